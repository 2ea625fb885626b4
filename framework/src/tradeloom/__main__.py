"""``python -m tradeloom`` runs the CLI."""

from tradeloom.cli.main import main

main()
