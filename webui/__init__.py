"""sparkctl's one web layer, shared by every UI (see `webui.server` and README.md).

The master and worker UIs (`cluster.ui`), the driver's application UI and the
history server (`scheduler.status.ui`) serve through `webui.server`: HTTP server,
security headers, jinja2 templates with autoescaping, formatters, static
files, Prometheus text. This package sits at the bottom beside `rpcenv`: it
never imports `cluster`, `scheduler`, `cli` or `rpcenv`, and never touches
cluster or application state. Importing it loads neither jinja2 nor
prometheus-client (the first page or scrape does).
"""
