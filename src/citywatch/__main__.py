"""``python -m citywatch``: the same as the ``citywatch`` command."""

from citywatch.cli import main

if __name__ == "__main__":
    main()
