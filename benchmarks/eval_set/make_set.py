"""Speak the evaluation set with espeak-ng and store it as 8 kHz μ-law WAVs plus manifest.json.

Run once by hand (Debian: apt-get install espeak-ng sox); the WAVs and the manifest are
committed, so nothing needs these tools at test or run time:

    .venv/bin/python -m benchmarks.eval_set.make_set

Each call has one track (the caller, `inbound`) or two (`inbound` and the agent, `outbound`).
A call is a list of turns; a track holds its speaker's turns, with silence while the other
speaker talks, as a telephony media stream carries them. `label` is the polarity a listener
would give the speaker over the whole call, `final` their mood at the end of it.
"""

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.eval_set import HERE, write_mulaw_wav
from callscope.audio.codec import to_mulaw

RATE: Final = 8000
GAP: Final = bytes(2 * RATE * 6 // 10)  # 0.6 s of 16-bit silence between turns


@dataclass(frozen=True, slots=True)
class Turn:
    track: str  # inbound (caller) or outbound (agent)
    text: str


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    kind: str  # angry, happy, neutral, numbers, turning, dialogue
    voices: dict[str, tuple[str, int]]  # track -> (espeak-ng voice, words per minute)
    turns: tuple[Turn, ...]
    labels: dict[str, tuple[str, str]]  # track -> (label, final mood)


def _caller(  # noqa: PLR0917 - one row of the table below
    name: str, kind: str, voice: str, speed: int, text: str, label: str, final: str = ""
) -> Call:
    return Call(
        name=name,
        kind=kind,
        voices={"inbound": (voice, speed)},
        turns=(Turn("inbound", text),),
        labels={"inbound": (label, final or label)},
    )


CALLS: Final = (
    # Clearly angry callers.
    _caller(
        "angry-outage",
        "angry",
        "en-us",
        150,
        (
            "This is absolutely unacceptable. My internet has been broken for three weeks and "
            "nobody fixed it. I am furious and I want a refund today."
        ),
        "negative",
    ),
    _caller(
        "angry-billing",
        "angry",
        "en-gb",
        160,
        (
            "You charged me twice again. This is the worst service I have ever had. I hate this "
            "and I will cancel my account."
        ),
        "negative",
    ),
    _caller(
        "angry-waiting",
        "angry",
        "en-us+f3",
        140,
        (
            "I have been waiting on hold for an hour. Your support is useless and your staff are "
            "rude. I am sick of these terrible excuses."
        ),
        "negative",
    ),
    _caller(
        "angry-technician",
        "angry",
        "en-gb-scotland",
        155,
        (
            "The technician never showed up, again. This is a disgrace. I am very angry and "
            "disappointed with your company."
        ),
        "negative",
    ),
    # Clearly happy callers.
    _caller(
        "happy-technician",
        "happy",
        "en-us",
        150,
        (
            "Thank you so much for your help. The technician was wonderful and everything works "
            "perfectly now. I am really happy."
        ),
        "positive",
    ),
    _caller(
        "happy-upgrade",
        "happy",
        "en-gb",
        145,
        (
            "Great news, the new plan is excellent. I love it and I really appreciate your "
            "friendly support."
        ),
        "positive",
    ),
    _caller(
        "happy-refund",
        "happy",
        "en-us+f3",
        160,
        (
            "I just wanted to say thanks. The refund arrived quickly and your team was brilliant. "
            "Fantastic service, well done."
        ),
        "positive",
    ),
    _caller(
        "happy-speed",
        "happy",
        "en-gb-x-rp",
        135,
        (
            "The new router is amazing. My connection is fast and stable, and I am very pleased. "
            "Thanks a lot for the great work."
        ),
        "positive",
    ),
    # Plain, polite requests: neutral.
    _caller(
        "neutral-address",
        "neutral",
        "en-us",
        150,
        "I would like to change the address on my account. The new address is twelve Baker Street.",
        "neutral",
    ),
    _caller(
        "neutral-plan",
        "neutral",
        "en-gb",
        155,
        (
            "Please change my plan to the basic package from next month. Could you also send me a"
            " copy of the contract?"
        ),
        "neutral",
    ),
    _caller(
        "neutral-invoice",
        "neutral",
        "en-us+f3",
        145,
        "I would like to know when my next invoice is due. Please send it to me by post.",
        "neutral",
    ),
    _caller(
        "neutral-appointment",
        "neutral",
        "en-gb-scotland",
        150,
        "Could you please move my appointment to Thursday morning? I will be at home after nine.",
        "neutral",
    ),
    # Account and card numbers, addresses, dates: neutral.
    _caller(
        "numbers-account",
        "numbers",
        "en-us",
        150,
        (
            "My account number is four seven two nine one. The last bill was one hundred and "
            "twenty five dollars."
        ),
        "neutral",
    ),
    _caller(
        "numbers-card",
        "numbers",
        "en-us",
        140,
        (
            "I want to pay by card. The card number is four one one one one one one one one one "
            "one one one one one one."
        ),
        "neutral",
    ),
    _caller(
        "numbers-card-visa",
        "numbers",
        "en-gb",
        135,
        (
            "My card number is four five three two zero one five one one two eight three zero "
            "three six six. It expires in March."
        ),
        "neutral",
    ),
    _caller(
        "numbers-date",
        "numbers",
        "en-us+f3",
        145,
        "The payment was made on the fourth of March, twenty twenty six, for sixty dollars.",
        "neutral",
    ),
    _caller(
        "numbers-address",
        "numbers",
        "en-gb-x-rp",
        150,
        (
            "Please send the letter to forty two Oak Road, flat seven. My reference is eight "
            "three one five six two."
        ),
        "neutral",
    ),
    _caller(
        "numbers-phone",
        "numbers",
        "en-gb",
        150,
        "You can call me back on zero seven seven zero zero nine zero zero one two three.",
        "neutral",
    ),
    # Calls whose mood turns halfway.
    _caller(
        "turning-calm-angry",
        "turning",
        "en-us",
        150,
        (
            "Hello, I am calling about my bill for this month. I see a charge for a movie I did "
            "not order. This is the third time this has happened. I am really angry, this is "
            "ridiculous and I want it removed now."
        ),
        "negative",
        "negative",
    ),
    _caller(
        "turning-calm-furious",
        "turning",
        "en-gb",
        155,
        (
            "Hi, I would like to ask about my broadband speed. It has been slow since Monday. "
            "Honestly, this is terrible. I am fed up with your awful service and I hate calling "
            "you."
        ),
        "negative",
        "negative",
    ),
    _caller(
        "turning-upset-happy",
        "turning",
        "en-us+f3",
        145,
        (
            "My phone stopped working yesterday and I was really upset and frustrated. But the "
            "agent fixed it in five minutes. Now it works perfectly, thank you, that was great."
        ),
        "positive",
        "positive",
    ),
)

DIALOGUES: Final = (
    Call(
        name="dialogue-angry-caller",
        kind="dialogue",
        voices={"inbound": ("en-us", 150), "outbound": ("en-gb-x-rp", 150)},
        turns=(
            Turn("outbound", "Good morning, how can I help you today?"),
            Turn(
                "inbound", "My bill is wrong again. You charged me twice and I am furious about it."
            ),
            Turn("outbound", "Let me check your account. I can see the second charge."),
            Turn("inbound", "This is terrible service. I am fed up and I want my money back."),
            Turn("outbound", "I will reverse the charge now. It will show on your next bill."),
        ),
        labels={"inbound": ("negative", "negative"), "outbound": ("neutral", "neutral")},
    ),
    Call(
        name="dialogue-happy-caller",
        kind="dialogue",
        voices={"inbound": ("en-gb", 150), "outbound": ("en-us+f3", 150)},
        turns=(
            Turn("outbound", "Hello, you are through to customer support."),
            Turn(
                "inbound",
                (
                    "Hi, I just wanted to say the engineer was excellent. I am delighted with the"
                    " new line."
                ),
            ),
            Turn("outbound", "That is wonderful to hear, thank you for letting us know."),
            Turn("inbound", "Thanks, you have been great. Have a lovely day."),
        ),
        labels={"inbound": ("positive", "positive"), "outbound": ("positive", "positive")},
    ),
    Call(
        name="dialogue-account-request",
        kind="dialogue",
        voices={"inbound": ("en-gb-scotland", 145), "outbound": ("en-us", 155)},
        turns=(
            Turn("outbound", "Customer support, may I have your account number please?"),
            Turn("inbound", "Yes, it is six one three eight four two."),
            Turn("outbound", "Thank you. What would you like to change?"),
            Turn("inbound", "I would like to move my payment date to the fifteenth of each month."),
            Turn("outbound", "I have changed the payment date to the fifteenth."),
        ),
        labels={"inbound": ("neutral", "neutral"), "outbound": ("neutral", "neutral")},
    ),
)


def _speak(text: str, voice: str, speed: int) -> bytes:
    """16-bit 8 kHz mono samples of `text`."""
    with tempfile.TemporaryDirectory() as folder:
        spoken, raw = Path(folder) / "spoken.wav", Path(folder) / "out.raw"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(spoken), text], check=True
        )
        subprocess.run(
            [
                "sox",
                str(spoken),
                "-r",
                str(RATE),
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                "-t",
                "raw",
                str(raw),
            ],
            check=True,
        )
        return raw.read_bytes()


def _tracks(call: Call) -> dict[str, bytes]:
    """Each track's samples: its speaker's turns, silence while the other speaks."""
    tracks: dict[str, bytearray] = {track: bytearray() for track in call.voices}
    for turn in call.turns:
        voice, speed = call.voices[turn.track]
        speech = _speak(turn.text, voice, speed) + GAP
        for track, samples in tracks.items():
            samples.extend(speech if track == turn.track else bytes(len(speech)))
    return {track: bytes(samples) for track, samples in tracks.items()}


def main() -> None:
    entries = []
    for call in (*CALLS, *DIALOGUES):
        for track, pcm16 in _tracks(call).items():
            speaker = "caller" if track == "inbound" else "agent"
            file = f"{call.name}.wav" if len(call.voices) == 1 else f"{call.name}.{speaker}.wav"
            write_mulaw_wav(HERE / file, to_mulaw(pcm16))
            voice, speed = call.voices[track]
            label, final = call.labels[track]
            entries.append(
                {
                    "file": file,
                    "call": call.name,
                    "kind": call.kind,
                    "track": track,
                    "speaker": speaker,
                    "voice": voice,
                    "speed": speed,
                    "label": label,
                    "final": final,
                    "text": " ".join(t.text for t in call.turns if t.track == track),
                }
            )
            print(file)
    manifest = {
        "about": "The evaluation set of `make eval-ai`, made by make_set.py with espeak-ng and "
        "sox: 8 kHz mono G.711 μ-law WAVs, one per track of a call. `text` is exactly what "
        "the track's speaker said; `label` the polarity a listener would give the speaker "
        "over the call, `final` their mood at its end; `kind` what the recording tests.",
        "recordings": entries,
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
