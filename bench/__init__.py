"""Embedrank's benchmark (issue 7): the gateway against the direct call, and the budgets it must meet.

``make bench`` runs ``python -m bench``; ``python -m bench --smoke`` runs every part with tiny counts.
"""
