"""`python -m callscope` runs the command line."""

from callscope.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
