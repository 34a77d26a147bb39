"""Nodes that ship with agentrt: a synthetic source, a stand-in policy, an actuator stand-in, fault injectors."""
