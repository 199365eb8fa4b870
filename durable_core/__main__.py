"""``python -m durable_core``: the same as the ``durable`` console script."""

from .cli import main

if __name__ == "__main__":
    main()
