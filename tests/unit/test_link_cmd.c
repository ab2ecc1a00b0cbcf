/* What the link proxy accepts: control commands, loopback-only addresses,
 * the blackout cycle; every malformed input refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/lib/link_cmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static void test_commands(void **state)
{
	(void)state;
	struct link_cmd c;
	char err[128];
	assert_int_equal(
	    link_cmd_parse("set delay 120 jitter 30 up 1000 down 3000", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_SET);
	assert_int_equal(c.set, LINK_SET_DELAY | LINK_SET_JITTER | LINK_SET_UP | LINK_SET_DOWN);
	assert_int_equal(c.delay_ms, 120);
	assert_int_equal(c.jitter_ms, 30);
	assert_int_equal(c.up_kbit, 1000);
	assert_int_equal(c.down_kbit, 3000);
	assert_int_equal(link_cmd_parse("set up 0\r", &c, err, sizeof(err)), 0);
	assert_int_equal(c.set, LINK_SET_UP);
	assert_int_equal(link_cmd_parse("  blackout   on ", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_BLACKOUT);
	assert_int_equal(c.on, 1);
	assert_int_equal(link_cmd_parse("refuse off", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_REFUSE);
	assert_int_equal(c.on, 0);
	assert_int_equal(link_cmd_parse("reset all", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_RESET_ALL);
	assert_int_equal(link_cmd_parse("reset after-bytes 65536", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_RESET_AFTER);
	assert_int_equal(c.bytes, 65536);
	assert_int_equal(link_cmd_parse("drop all", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_DROP_ALL);
	assert_int_not_equal(link_cmd_parse("drop", &c, err, sizeof(err)), 0);
	assert_int_not_equal(link_cmd_parse("drop some", &c, err, sizeof(err)), 0);
	assert_int_equal(link_cmd_parse("stats", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_STATS);
	assert_int_equal(link_cmd_parse("quit", &c, err, sizeof(err)), 0);
	assert_int_equal(c.kind, LINK_CMD_QUIT);
}

static void test_bad_commands(void **state)
{
	(void)state;
	static const char *bad[] = {"",
	                            "   ",
	                            "frobnicate",
	                            "set",
	                            "set delay",
	                            "set delay -1",
	                            "set delay 1x",
	                            "set colour 3",
	                            "set delay 1 delay 2",
	                            "set delay 999999999",
	                            "blackout",
	                            "blackout maybe",
	                            "refuse on off",
	                            "reset",
	                            "reset some",
	                            "reset after-bytes",
	                            "reset after-bytes -5",
	                            "stats now",
	                            "quit please",
	                            "set delay 99999999999999999999999",
	                            "a b c d e f g h i j k l m n"};
	struct link_cmd c;
	char err[128];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (link_cmd_parse(bad[i], &c, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: '%s'", bad[i]);
		assert_true(strlen(err) > 0);
	}
	char longline[400];
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	assert_int_equal(link_cmd_parse(longline, &c, err, sizeof(err)), -EINVAL);
}

static void test_addresses_loopback_only(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	socklen_t len;
	char err[128];
	assert_int_equal(link_addr_parse("127.0.0.1:8080", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
	assert_int_equal(link_addr_parse("127.8.9.10:0", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(link_addr_parse("localhost:1", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(link_addr_parse("[::1]:443", &ss, &len, err, sizeof(err)), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	static const char *bad[] = {"10.0.0.1:80", "0.0.0.0:0",       "8.8.8.8:53",
	                            "[::]:80",     "[2001:db8::1]:1", "example.org:80",
	                            "127.0.0.1",   "127.0.0.1:65536", "127.0.0.1:x",
	                            ":80",         "[::1:80",         "128.0.0.1:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (link_addr_parse(bad[i], &ss, &len, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: '%s'", bad[i]);
	link_addr_parse("10.0.0.1:80", &ss, &len, err, sizeof(err));
	assert_non_null(strstr(err, "loopback"));
}

static void test_cycle(void **state)
{
	(void)state;
	int64_t up, down;
	char err[128];
	assert_int_equal(link_cycle_parse("30:120", &up, &down, err, sizeof(err)), 0);
	assert_int_equal(up, 30000);
	assert_int_equal(down, 120000);
	assert_int_equal(link_cycle_parse("0.25:1.5", &up, &down, err, sizeof(err)), 0);
	assert_int_equal(up, 250);
	assert_int_equal(down, 1500);
	static const char *bad[] = {"30",  "30:",   ":30",   "0:10",  "10:0",   "-1:5",
	                            "a:b", "1:2:3", "inf:1", "nan:1", "1e400:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (link_cycle_parse(bad[i], &up, &down, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: '%s'", bad[i]);
}

static void test_numbers(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(link_num_parse("0", 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(link_num_parse("18446744073709551615", UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(link_num_parse("18446744073709551616", UINT64_MAX, &v), -EINVAL);
	assert_int_equal(link_num_parse("11", 10, &v), -EINVAL);
	assert_int_equal(link_num_parse("", 10, &v), -EINVAL);
	assert_int_equal(link_num_parse("+1", 10, &v), -EINVAL);
	assert_int_equal(link_num_parse(" 1", 10, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commands),
	    cmocka_unit_test(test_bad_commands),
	    cmocka_unit_test(test_addresses_loopback_only),
	    cmocka_unit_test(test_cycle),
	    cmocka_unit_test(test_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
