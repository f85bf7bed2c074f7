"""Helpers of tests/test_doc_examples.py: find the marked code blocks of the docs and run them in a bake."""
