"""``python -m stemsplit`` (also the torchrun entry: ``torchrun -m stemsplit train ...``)."""
from stemsplit.cli import main

if __name__ == "__main__":
    main()
