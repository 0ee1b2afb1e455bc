"""`melodygen studio`: a local web page to generate, hear, download and keep pieces.

`form` (the generation form, checked), `session` (`Studio`: models, background jobs, samples,
favourites; no web), `app` (`create_app`: the Flask routes and messages), `serve` (what the
command runs), `templates/index.html` + `static/` (the page: plain HTML and a little JS).
Flask is an optional dependency (the `studio` extra); only `app` and `serve` import it.
"""
