"""Behaviour specs: verifiable instructions that a response either follows or not."""
