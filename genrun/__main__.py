"""`python -m genrun` is `genrun`."""

from genrun.cli import main

if __name__ == "__main__":
    main()
