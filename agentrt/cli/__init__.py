"""The `agentrt` command line: one module per subcommand (see COMMANDS in __main__; `agentrt node` is run_host.py)."""
