"""Private, real services for tests (see offload_testkit.plugin for the fixtures)."""
