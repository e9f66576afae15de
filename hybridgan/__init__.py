"""The hybridgan command line (hybridgan/cli.py); the model lives in model/, the service in app/."""
