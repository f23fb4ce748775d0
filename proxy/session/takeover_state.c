/*
 * takeover_state.c - giving up a session's claim on a slot, and freeing what it
 * held for takeover.
 */
#include "session/takeover_state.h"

#include <event2/event.h>
#include <stdlib.h>

void takeover_unclaim(struct takeover *tk)
{
	if (!tk->claim)
		return;
	slot_claims_remove(tk->registry, tk->claim);
	tk->claim = NULL;
}

void takeover_free(struct takeover *tk)
{
	if (!tk)
		return;
	takeover_unclaim(tk);
	event_free(tk->poll);
	free(tk);
}
