"""``python -m edgeaff.cli``: the same as the ``edgeaff`` console script."""

from edgeaff.cli import main

if __name__ == "__main__":
    main()
