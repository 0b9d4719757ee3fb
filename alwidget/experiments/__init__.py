"""Experiments apart from the product: a simulated oracle labels what a session asks for."""
