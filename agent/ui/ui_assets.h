/* The web UI's files (agent/ui/www/), compiled into ess-ui by
 * agent/ui/gen-assets.sh so that nothing is read from disk at run time. */
#ifndef ESS_UI_ASSETS_H
#define ESS_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char *path; /* "/index.html" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Ends with an entry whose path is NULL. */
extern const struct ui_asset ui_assets[];

#endif
