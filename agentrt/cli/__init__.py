"""The `agentrt` command line: one module per subcommand (see COMMANDS in __main__)."""
