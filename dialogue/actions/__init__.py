"""Custom Rasa actions, served by `rasa run actions --actions dialogue.actions` in the Rasa venv.

The action server imports every module of this package and registers each Action subclass.
"""

from dialogue.nlp import LANGUAGES, pipeline

for _language in LANGUAGES:  # built at start-up (a few seconds: the lemma tables) rather than in a caller's turn
    pipeline(_language)
