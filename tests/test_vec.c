/* test_vec.c — growing arrays (cellstate/vec.h): the first size, doubling,
 * contents kept, the same array when it has room, and an impossible size
 * refused with the array and its capacity unchanged. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "cellstate/vec.h"

Test(vec, grows_from_first_by_doubling_and_keeps_contents)
{
    uint64_t *v = NULL;
    size_t cap = 0, n = 0;
    size_t seen[8], nseen = 0;
    for (uint64_t i = 0; i < 100; i++) {
        uint64_t *nv = cs_vec_grow(v, &cap, n + 1, sizeof *v, 16);
        cr_assert_not_null(nv);
        v = nv;
        if (nseen == 0 || seen[nseen - 1] != cap)
            seen[nseen++] = cap;
        v[n++] = i * 7;
    }
    cr_assert_eq(nseen, 4);
    cr_assert_eq(seen[0], 16);
    cr_assert_eq(seen[1], 32);
    cr_assert_eq(seen[2], 64);
    cr_assert_eq(seen[3], 128);
    for (uint64_t i = 0; i < 100; i++)
        cr_assert_eq(v[i], i * 7);
    /* Room enough: the same array, the same capacity. */
    cr_assert_eq(cs_vec_grow(v, &cap, 100, sizeof *v, 16), v);
    cr_assert_eq(cap, 128);
    /* A jump past one doubling doubles until it holds. */
    uint64_t *nv = cs_vec_grow(v, &cap, 1000, sizeof *v, 16);
    cr_assert_not_null(nv);
    cr_assert_eq(cap, 1024);
    free(nv);
}

Test(vec, an_impossible_size_is_refused_and_changes_nothing)
{
    size_t cap = 4;
    char *v = malloc(4);
    cr_assert_not_null(v);
    cr_assert_null(cs_vec_grow(v, &cap, SIZE_MAX, 16, 1));
    cr_assert_eq(cap, 4);
    cr_assert_null(cs_vec_grow(v, &cap, SIZE_MAX / 4, 16, 1));
    cr_assert_eq(cap, 4);
    free(v);
}

Test(vec, an_id_list_keeps_every_id_in_order_across_growth)
{
    cs_ids l = {0};
    for (uint64_t i = 0; i < 1000; i++)
        cr_assert_eq(cs_ids_push(&l, i * 7 + 1), CS_OK);
    cr_assert_eq(l.n, 1000);
    cr_assert_geq(l.cap, 1000);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(l.v[i], i * 7 + 1);
    cs_ids_free(&l);
    cr_assert_null(l.v);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(l.cap, 0);
    cr_assert_eq(cs_ids_push(&l, 42), CS_OK, "a freed list is empty and usable");
    cr_assert_eq(l.v[0], 42);
    cs_ids_free(&l);
}
