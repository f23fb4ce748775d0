/*
 * prom_text.h - the pieces of Prometheus's text exposition format that
 * every family of walgate's scrape writes: the lines that open a family and
 * the escaping of a label value.
 */
#ifndef WALGATE_PROM_TEXT_H
#define WALGATE_PROM_TEXT_H

struct evbuffer;

/* The # HELP and # TYPE lines that open a metric family. */
void metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help);

/* Write v as the inside of a quoted label value (\\, \", newline escaped). */
void metrics_escape(struct evbuffer *b, const char *v);

#endif
