/*
 * CUnit/CUnit.h for microcontrollers: the assertions the host tests use,
 * with CUnit's meaning, over the tiny runner in tu_target.c.  CUnit itself
 * needs a hosted C library and more RAM than the small targets have, so the
 * same test sources are compiled against this header there.
 *
 * A failed assertion records the line (and, where RAM allows, the
 * expression); a failed _FATAL assertion also ends the current test, as in
 * CUnit (a longjmp back to the runner).
 */
#ifndef TU_TARGET_CUNIT_H
#define TU_TARGET_CUNIT_H

#include <stdbool.h>
#include <string.h>

/* Expression texts cost RAM on AVR (strings live in data there): the line
 * number alone says which assertion failed. */
#if defined(__AVR__)
#define TU_EXPR(s) ((const char *)0)
#else
#define TU_EXPR(s) (s)
#endif

/* Record one assertion; when fatal and it failed, end the test. */
void tu_assert(bool ok, unsigned line, const char *expr, bool fatal);

#define CU_ASSERT(v)             tu_assert((v) ? true : false, __LINE__, TU_EXPR(#v), false)
#define CU_ASSERT_FATAL(v)       tu_assert((v) ? true : false, __LINE__, TU_EXPR(#v), true)
#define CU_ASSERT_TRUE(v)        CU_ASSERT(v)
#define CU_ASSERT_TRUE_FATAL(v)  CU_ASSERT_FATAL(v)
#define CU_ASSERT_FALSE(v)       CU_ASSERT(!(v))
#define CU_ASSERT_FALSE_FATAL(v) CU_ASSERT_FATAL(!(v))
#define CU_ASSERT_EQUAL(a, b)                                                                      \
    tu_assert(((a) == (b)) ? true : false, __LINE__, TU_EXPR(#a " == " #b), false)
#define CU_ASSERT_EQUAL_FATAL(a, b)                                                                \
    tu_assert(((a) == (b)) ? true : false, __LINE__, TU_EXPR(#a " == " #b), true)
#define CU_ASSERT_NOT_EQUAL(a, b)                                                                  \
    tu_assert(((a) != (b)) ? true : false, __LINE__, TU_EXPR(#a " != " #b), false)
#define CU_ASSERT_NOT_EQUAL_FATAL(a, b)                                                            \
    tu_assert(((a) != (b)) ? true : false, __LINE__, TU_EXPR(#a " != " #b), true)
#define CU_ASSERT_PTR_EQUAL(a, b)                                                                  \
    tu_assert((const void *)(a) == (const void *)(b), __LINE__, TU_EXPR(#a " == " #b), false)
#define CU_ASSERT_PTR_NOT_EQUAL(a, b)                                                              \
    tu_assert((const void *)(a) != (const void *)(b), __LINE__, TU_EXPR(#a " != " #b), false)
#define CU_ASSERT_PTR_NULL(p)                                                                      \
    tu_assert((const void *)(p) == (const void *)0, __LINE__, TU_EXPR(#p " == NULL"), false)
#define CU_ASSERT_PTR_NULL_FATAL(p)                                                                \
    tu_assert((const void *)(p) == (const void *)0, __LINE__, TU_EXPR(#p " == NULL"), true)
#define CU_ASSERT_PTR_NOT_NULL(p)                                                                  \
    tu_assert((const void *)(p) != (const void *)0, __LINE__, TU_EXPR(#p " != NULL"), false)
#define CU_ASSERT_PTR_NOT_NULL_FATAL(p)                                                            \
    tu_assert((const void *)(p) != (const void *)0, __LINE__, TU_EXPR(#p " != NULL"), true)
#define CU_ASSERT_STRING_EQUAL(a, b)                                                               \
    tu_assert(strcmp((a), (b)) == 0, __LINE__, TU_EXPR(#a " eq " #b), false)
#define CU_FAIL(msg)       tu_assert(false, __LINE__, TU_EXPR(msg), false)
#define CU_FAIL_FATAL(msg) tu_assert(false, __LINE__, TU_EXPR(msg), true)
#define CU_PASS(msg)       tu_assert(true, __LINE__, TU_EXPR(msg), false)

#endif /* TU_TARGET_CUNIT_H */
