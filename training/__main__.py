"""``python -m training <fit|validate|test> --config ...`` (LightningCLI)."""

from training.cli import fit_cli

if __name__ == "__main__":
    fit_cli()
