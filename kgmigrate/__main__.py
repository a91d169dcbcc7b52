"""python -m kgmigrate."""

from .cli import main

main()
