"""Local Sphinx extension of the course website: keep every page offline and console-clean.

jupyter-book 1.x always loads sphinx-thebe (live code cells through a remote Jupyter server).
The site does not use it (launch buttons are off), yet its inline configuration script is added
twice, which makes every page log "Identifier 'THEBE_JS_URL' has already been declared", and it
names a CDN URL. This extension drops the Thebe scripts from every page.
"""


def _drop_thebe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    context["script_files"] = [
        js for js in scripts
        if "thebe" not in str(getattr(js, "filename", js)).lower()
        and "THEBE_JS_URL" not in str(getattr(js, "attributes", {}).get("body", ""))
    ]


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
