/* hal/input: the panic detector with injected times, and the evdev backend
 * on a FIFO standing in for /dev/input/eventN (the same struct input_event
 * records; EOF when the writer goes, like an unplugged device): double and
 * long presses, noise, split records, the device going away and coming
 * back. The GPIO backend is driven on a tree without a real chip: it keeps
 * rescanning, never fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/loop.h"
#include "hal/input.h"
#include "tests/lib/faketree.h"
#include "tests/lib/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_detector(void **state)
{
	(void)state;
	struct hal_panic p;
	int64_t next;
	hal_panic_init(&p, 2000, 600);
	/* one short press: nothing */
	assert_int_equal(hal_panic_key(&p, 1, 1000), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_tick(&p, 1100, &next), HAL_PANIC_NONE);
	assert_int_equal(next, 3000);
	assert_int_equal(hal_panic_key(&p, 0, 1150), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_tick(&p, 5000, &next), HAL_PANIC_NONE);
	assert_int_equal(next, -1);
	/* a second press too late: nothing, but it starts a new pair */
	assert_int_equal(hal_panic_key(&p, 1, 1700), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 0, 1800), HAL_PANIC_NONE);
	/* in time: a double press */
	assert_int_equal(hal_panic_key(&p, 1, 2200), HAL_PANIC_DOUBLE);
	/* held on after it: no second (long) panic */
	assert_int_equal(hal_panic_tick(&p, 9000, &next), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 0, 9000), HAL_PANIC_NONE);
	/* a third press right after is a new first press, not another panic */
	assert_int_equal(hal_panic_key(&p, 1, 9200), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 0, 9300), HAL_PANIC_NONE);
	/* contact bounce (release and press within the debounce time) is one
	 * press: no double */
	hal_panic_init(&p, 2000, 600);
	assert_int_equal(hal_panic_key(&p, 1, 20000), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 0, 20100), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 1, 20110), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 0, 20150), HAL_PANIC_NONE);
	/* long press: once, at down + long */
	hal_panic_init(&p, 2000, 600);
	assert_int_equal(hal_panic_key(&p, 1, 30000), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 1, 30500), HAL_PANIC_NONE); /* repeat */
	assert_int_equal(hal_panic_tick(&p, 31999, &next), HAL_PANIC_NONE);
	assert_int_equal(next, 32000);
	assert_int_equal(hal_panic_tick(&p, 32000, &next), HAL_PANIC_LONG);
	assert_int_equal(hal_panic_tick(&p, 33000, &next), HAL_PANIC_NONE);
	assert_int_equal(hal_panic_key(&p, 0, 33000), HAL_PANIC_NONE);
	/* a press right after a long press is not a double */
	assert_int_equal(hal_panic_key(&p, 1, 33100), HAL_PANIC_NONE);
	assert_string_equal(hal_panic_str(HAL_PANIC_LONG), "long");
	assert_string_equal(hal_panic_str(HAL_PANIC_DOUBLE), "double");
}

struct fx {
	char *root;
	char fifo[512];
	struct loop *l;
	int panics[3];
};

static void on_panic(void *arg, enum hal_panic_kind k)
{
	struct fx *f = arg;
	f->panics[k]++;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->root = tu_tmpdir("input");
	assert_int_equal(loop_open(&f->l), 0);
	ft_mkdir(f->root, "dev/input");
	snprintf(f->fifo, sizeof(f->fifo), "%s/dev/input/event3", f->root);
	assert_int_equal(mkfifo(f->fifo, 0600), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	loop_close(f->l);
	tu_rmrf(f->root);
	free(f);
	return 0;
}

static void emit(int fd, int type, int code, int value)
{
	struct input_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = (unsigned short)type;
	ev.code = (unsigned short)code;
	ev.value = value;
	assert_int_equal(write(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
}

static void key(int fd, int code, int value)
{
	emit(fd, EV_MSC, MSC_SCAN, 0x90001);
	emit(fd, EV_KEY, code, value);
	emit(fd, EV_SYN, SYN_REPORT, 0);
}

static int writer(const char *path)
{
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void test_evdev_fifo(void **state)
{
	struct fx *f = *state;
	char err[256];
	struct hal_input *in;
	struct hal_input_stats st;
	struct hal_input_params p = {.loop = f->l,
	                             .root = f->root,
	                             .device = "/dev/input/event3",
	                             .key = KEY_F13,
	                             .long_press_ms = 150,
	                             .double_press_ms = 300,
	                             .rescan_ms = 30,
	                             .on_panic = on_panic,
	                             .arg = f};
	assert_int_equal(hal_input_open("evdev", &p, &in, err, sizeof(err)), 0);
	assert_string_equal(hal_input_name(in), "evdev");
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	int w = writer(f->fifo);

	/* a single press of our key and presses of another key: nothing.
	 * Presses come at a human's pace (the loop runs in between): closer
	 * than the debounce time they would be one bouncing press. */
	key(w, KEY_F13, 1);
	tu_run_for(f->l, 40);
	key(w, KEY_F13, 0);
	tu_run_for(f->l, 40);
	key(w, KEY_A, 1);
	key(w, KEY_A, 0);
	key(w, KEY_A, 1);
	key(w, KEY_A, 0);
	tu_run_for(f->l, 20);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE] + f->panics[HAL_PANIC_LONG], 0);
	tu_run_for(f->l, 350); /* past the double-press window */
	/* a bounce (release and press at once) is not a second press */
	key(w, KEY_F13, 1);
	key(w, KEY_F13, 0);
	key(w, KEY_F13, 1);
	key(w, KEY_F13, 0);
	tu_run_for(f->l, 20);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 0);
	tu_run_for(f->l, 350);
	/* press twice: a double */
	key(w, KEY_F13, 1);
	tu_run_for(f->l, 40);
	key(w, KEY_F13, 0);
	tu_run_for(f->l, 40);
	key(w, KEY_F13, 1);
	key(w, KEY_F13, 0);
	tu_run_for(f->l, 20);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 1);
	tu_run_for(f->l, 350); /* the double-press window passes */

	/* a long press, sent as a record split across two writes and with
	 * auto-repeat records while held */
	struct input_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = EV_KEY;
	ev.code = KEY_F13;
	ev.value = 1;
	assert_int_equal(write(w, &ev, 5), 5);
	tu_run_for(f->l, 10);
	assert_int_equal(write(w, (char *)&ev + 5, sizeof(ev) - 5), (ssize_t)(sizeof(ev) - 5));
	tu_run_for(f->l, 60);
	key(w, KEY_F13, 2);
	tu_run_for(f->l, 60);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 0);
	tu_run_for(f->l, 60);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 1);
	key(w, KEY_F13, 0);
	tu_run_for(f->l, 350);
	hal_input_stats(in, &st);
	assert_int_equal(st.presses, 5);
	assert_int_equal(st.panics, 2);

	/* the device goes away while the key is held: no phantom long press */
	key(w, KEY_F13, 1);
	tu_run_for(f->l, 10);
	close(w);
	tu_run_for(f->l, 20);
	hal_input_stats(in, &st);
	assert_int_equal(st.losses, 1);
	tu_run_for(f->l, 200);
	assert_int_equal(f->panics[HAL_PANIC_LONG], 1);
	/* it was found again by the rescan */
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	assert_int_equal(st.attaches, 2);

	/* now the node itself disappears: rescans fail quietly until it is back */
	w = writer(f->fifo);
	close(w);
	tu_run_for(f->l, 10);
	unlink(f->fifo);
	tu_run_for(f->l, 120);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 0);
	assert_int_equal(st.losses, 2);
	assert_int_equal(mkfifo(f->fifo, 0600), 0);
	tu_run_for(f->l, 80);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	w = writer(f->fifo);
	key(w, KEY_F13, 1);
	tu_run_for(f->l, 40);
	key(w, KEY_F13, 0);
	tu_run_for(f->l, 40);
	key(w, KEY_F13, 1);
	tu_run_for(f->l, 20);
	assert_int_equal(f->panics[HAL_PANIC_DOUBLE], 2);
	close(w);
	hal_input_close(in);
}

static void test_absent_and_bad(void **state)
{
	struct fx *f = *state;
	char err[256];
	struct hal_input *in;
	struct hal_input_stats st;
	/* evdev device not there at start: open works, rescans */
	struct hal_input_params p = {
	    .loop = f->l, .root = f->root, .device = "/dev/input/event9", .rescan_ms = 20};
	assert_int_equal(hal_input_open("evdev", &p, &in, err, sizeof(err)), 0);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 0);
	tu_run_for(f->l, 50);
	char path[600];
	snprintf(path, sizeof(path), "%s/dev/input/event9", f->root);
	assert_int_equal(mkfifo(path, 0600), 0);
	tu_run_for(f->l, 50);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 1);
	hal_input_close(in);

	/* a GPIO chip that is no GPIO chip: never attached, never fatal */
	ft_write(f->root, "dev/gpiochip2", "");
	p.device = "gpiochip2:5";
	assert_int_equal(hal_input_open("gpio", &p, &in, err, sizeof(err)), 0);
	tu_run_for(f->l, 60);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 0);
	hal_input_close(in);

	static const char *const bad_evdev[] = {"event0", "/etc/passwd", "/dev/input/../../x"};
	for (size_t i = 0; i < 3; i++) {
		p.device = bad_evdev[i];
		assert_int_equal(hal_input_open("evdev", &p, &in, err, sizeof(err)), -EINVAL);
	}
	p.device = "/dev/input/event0";
	p.key = KEY_MAX + 1;
	assert_int_equal(hal_input_open("evdev", &p, &in, err, sizeof(err)), -EINVAL);
	p.key = 0;
	p.device = "gpiochip0";
	assert_int_equal(hal_input_open("gpio", &p, &in, err, sizeof(err)), -EINVAL);
	assert_int_equal(hal_input_open("uinput", &p, &in, err, sizeof(err)), -ENOENT);
	assert_int_equal(hal_input_open("none", &p, &in, err, sizeof(err)), 0);
	hal_input_stats(in, &st);
	assert_int_equal(st.attached, 0);
	hal_input_close(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_detector),
	    cmocka_unit_test_setup_teardown(test_evdev_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent_and_bad, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
