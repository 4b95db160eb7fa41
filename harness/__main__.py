from harness.cli import main

if __name__ == "__main__":  # not when a spawned child process re-imports it
    raise SystemExit(main())
