/* ui.h — the web dashboard's files (ui/: index.html, app.js, style.css),
 * embedded in the binary at build time, for cellstated to serve at /ui/
 * through the gateway's pages (gateway.h cs_http_page; docs/http.md).
 *
 * Why embedded and not read from disk: cellstated is one file that runs
 * anywhere (make install copies the programs only), and a dashboard that
 * matches the binary serving its API cannot go stale against it. Why no
 * framework or CDN: the page must work on a machine without Internet
 * access, and it is three small files that escape every name they show.
 *
 * The definitions are generated, not written: tools/embed.sh turns each
 * file of ui/ into a cs_http_file named cs_ui_<file name, '.' as '_'>
 * (build/.../gen/ui_files.c, never committed; the Makefile builds it into
 * the http layer). Each is constant for the life of the process.
 */
#ifndef CS_HTTP_UI_H
#define CS_HTTP_UI_H

#include "http/gateway.h"

extern const cs_http_file cs_ui_index_html; /* ui/index.html */
extern const cs_http_file cs_ui_app_js;     /* ui/app.js */
extern const cs_http_file cs_ui_style_css;  /* ui/style.css */

#endif
