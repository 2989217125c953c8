"""The test bench: real servers on free loopback ports (or containers, or given URLs) for tests."""
