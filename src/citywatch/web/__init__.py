"""The command-centre web dashboard."""
