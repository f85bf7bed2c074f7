"""Helpers of the adversarial suites (tests/test_adversarial_*.py): a raw-socket HTTP/1.1 client that reports how a
connection ended, a bake started under a memory limit like the deployed unit's, the fuzzer's request recipes, and
replayable failure files."""
