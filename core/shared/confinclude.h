/* @include resolved once, when a configuration is loaded from its file.
 *
 * The text a generation keeps (and hands to its workers and across an
 * upgrade) is the file with every @include replaced by the included text,
 * so nothing reads configuration from disk after the load.  Each included
 * piece is framed by marker comments ("#@from "FILE" LINE": the next line
 * is line LINE of FILE), which libconfig skips and conf_origin() reads to
 * name the file and line of a setting. */
#ifndef UFFDKIT_CORE_CONFINCLUDE_H
#define UFFDKIT_CORE_CONFINCLUDE_H

#include <stddef.h>

#include "conferr.h"

/* The text of path with every @include expanded (nested up to 10 deep),
 * malloc'd into *out; paths are taken as libconfig takes them (relative to
 * the working directory).  Returns 0, or -1 with the reason, naming file
 * and line, in err. */
int conf_expand_file(const char *path, char **out, struct conf_err *err);

/* Where line `line` of an expanded text came from: *file (pointing into
 * text, length *flen, or NULL for the main file) and its line there. */
int conf_origin(const char *text, int line, const char **file, int *flen);

#endif
