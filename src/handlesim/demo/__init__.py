"""The teaching demo: a lookup shown step by step, in a terminal (`handlesim demo`) and a browser (`handlesim web`).

`lookup.py` turns a resolution's trace into what a class is shown (who was asked, what it answered, how long it took);
`walkthrough.py` is the guided scenario, `narration.py` its sentences in English and Chinese, `terminal.py` draws it
with rich, `web.py` serves the page in `static/` and its JSON API.
"""
