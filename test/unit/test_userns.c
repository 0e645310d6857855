/* The user namespace mappings: what is refused before the kernel sees it,
 * the map text, id translation and the record round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/userns.h"
#include "unit.h"

static struct userns_range R(uint32_t c, uint32_t h, uint32_t l) {
    return (struct userns_range){c, h, l};
}

static int
check1(struct userns_range r, enum err_code *code)
{
    err_t e = ERR_INIT;
    int rc = userns_check_ranges(&r, 1, "uid", &e);
    *code = e.code;
    err_clear(&e);
    return rc;
}

static void test_valid(void)
{
    enum err_code code;
    CHECK_EQ_INT(check1(R(0, 100000, 65536), &code), 0);
    CHECK_EQ_INT(check1(R(0, 0, 1), &code), 0);
    /* the last valid id is 2^32 - 2 */
    CHECK_EQ_INT(check1(R(0, UINT32_MAX - 65536, 65536), &code), 0);
    struct userns_range two[] = {R(1000, 301000, 1000), R(0, 300000, 1000)};
    err_t e = ERR_INIT;
    CHECK_EQ_INT(userns_check_ranges(two, 2, "gid", &e), 0);
    err_clear(&e);
}

static void test_refused(void)
{
    enum err_code code;
    CHECK(check1(R(0, 100000, 0), &code) < 0 && code == ERR_INVALID_ARGUMENT);
    CHECK(check1(R(1, 100000, 10), &code) < 0 && code == ERR_INVALID_ARGUMENT); /* root unmapped */
    CHECK(check1(R(0, UINT32_MAX - 10, 11), &code) < 0);                        /* reaches (uid_t)-1 */
    CHECK(check1(R(0, UINT32_MAX, 1), &code) < 0);
    CHECK(check1(R(0, 5, UINT32_MAX), &code) < 0); /* wraps */
    err_t e = ERR_INIT;
    CHECK(userns_check_ranges(NULL, 0, "uid", &e) < 0 && e.code == ERR_INVALID_ARGUMENT);
    err_clear(&e);
    struct userns_range inside[] = {R(0, 100000, 100), R(50, 300000, 100)};
    CHECK(userns_check_ranges(inside, 2, "uid", &e) < 0 && strstr(e.msg, "inside"));
    err_clear(&e);
    struct userns_range host[] = {R(0, 100000, 100), R(1000, 100099, 5)};
    CHECK(userns_check_ranges(host, 2, "uid", &e) < 0 && strstr(e.msg, "host"));
    err_clear(&e);
    struct userns_range many[USERNS_MAX_MAPPINGS + 1];
    for (size_t i = 0; i < USERNS_MAX_MAPPINGS + 1; i++)
        many[i] = R((uint32_t)i * 10, 100000 + (uint32_t)i * 10, 10);
    CHECK_EQ_INT(userns_check_ranges(many, USERNS_MAX_MAPPINGS, "uid", &e), 0);
    CHECK(userns_check_ranges(many, USERNS_MAX_MAPPINGS + 1, "uid", &e) < 0);
    err_clear(&e);
    /* the gid side is checked too, and named */
    struct userns_map m = {.uids = {R(0, 1000, 10)}, .n_uids = 1, .n_gids = 0};
    CHECK(userns_check(&m, &e) < 0 && strstr(e.msg, "gid"));
    err_clear(&e);
}

static void test_text_and_translation(void)
{
    struct userns_range r[] = {R(0, 100000, 1000), R(5000, 7000, 10)};
    char *t = userns_map_text(r, 2);
    CHECK_STREQ(t, "0 100000 1000\n5000 7000 10\n");
    free(t);
    struct userns_range max[USERNS_MAX_MAPPINGS];
    for (size_t i = 0; i < USERNS_MAX_MAPPINGS; i++)
        max[i] = R(UINT32_MAX - 1, UINT32_MAX - 1, UINT32_MAX - 1);
    t = userns_map_text(max, USERNS_MAX_MAPPINGS);
    CHECK(t && strlen(t) < 4096); /* one write, one page */
    free(t);
    uint32_t h = 0;
    CHECK(userns_to_host(r, 2, 0, &h) && h == 100000);
    CHECK(userns_to_host(r, 2, 999, &h) && h == 100999);
    CHECK(!userns_to_host(r, 2, 1000, &h));
    CHECK(userns_to_host(r, 2, 5009, &h) && h == 7009);
    CHECK(!userns_to_host(r, 2, 5010, &h));
    struct userns_range swapped[] = {R(5000, 7000, 10), R(0, 100000, 1000)};
    CHECK(userns_ranges_equal(r, 2, swapped, 2));
    CHECK(!userns_ranges_equal(r, 2, swapped, 1));
    struct userns_range other[] = {R(0, 100000, 1000), R(5000, 7001, 10)};
    CHECK(!userns_ranges_equal(r, 2, other, 2));
}

static void test_record(void)
{
    struct userns_map m = {.uids = {R(0, 100000, 65536)}, .n_uids = 1, .gids = {R(0, 200000, 65536)}, .n_gids = 1};
    json_t *j = userns_to_json(&m);
    struct userns_map back;
    err_t e = ERR_INIT;
    CHECK_EQ_INT(userns_from_json(j, &back, &e), 0);
    CHECK(back.n_uids == 1 && back.uids[0].host_id == 100000 && back.gids[0].host_id == 200000);
    json_decref(j);
    static const char *const bad[] = {
        "{}",
        "{\"uids\": [[0, 1, 2]], \"gids\": 5}",
        "{\"uids\": [[0, 1]], \"gids\": [[0, 1, 2]]}",
        "{\"uids\": [[0, -1, 2]], \"gids\": [[0, 1, 2]]}",
        "{\"uids\": [[0, 1, 4294967296]], \"gids\": [[0, 1, 2]]}",
        "{\"uids\": [[0, 1, \"2\"]], \"gids\": [[0, 1, 2]]}",
        "{\"uids\": [[0, 1, 0]], \"gids\": [[0, 1, 2]]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = json_loads(bad[i], 0, NULL);
        CHECK_MSG(userns_from_json(b, &back, &e) < 0 && e.msg, "record %s accepted", bad[i]);
        err_clear(&e);
        json_decref(b);
    }
}

int main(void)
{
    RUN(test_valid);
    RUN(test_refused);
    RUN(test_text_and_translation);
    RUN(test_record);
    return unit_summary();
}
