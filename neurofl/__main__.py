import sys

try:
    from neurofl.cli import main
except KeyboardInterrupt:  # Ctrl-C before the CLI's own handler is in place
    print("interrupted: rerun the same command (same --out) to resume", file=sys.stderr)
    sys.exit(130)

main()
