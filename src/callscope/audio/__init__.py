"""Call audio: formats, reassembly of a call's packets, WAV encoding — pure functions."""
