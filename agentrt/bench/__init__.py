"""Benchmarks behind `agentrt bench NAME`; each module exposes run(quick) and print_table(result)."""
