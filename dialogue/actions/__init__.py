"""Custom Rasa actions, served by `rasa run actions --actions dialogue.actions` in the Rasa venv.

The action server imports every module of this package and registers each Action subclass.
"""
