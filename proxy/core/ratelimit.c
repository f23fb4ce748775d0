/*
 * ratelimit.c - a fixed-window rate limit (see ratelimit.h).
 */
#include "core/ratelimit.h"

bool ratelimit_pass(struct ratelimit *rl, int64_t now, unsigned long *suppressed)
{
	if (now - rl->window_start >= rl->period) {
		rl->window_start = now;
		rl->used = 0;
	}
	if (rl->used >= rl->burst) {
		rl->suppressed++;
		return false;
	}
	rl->used++;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}
