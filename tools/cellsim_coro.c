/* cellsim_coro.c — coroutines on ucontext (see cellsim_coro.h). */
#include "tools/cellsim_coro.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

/* Which sanitizer is built in: gcc says so with a macro, clang with
 * __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORO_TSAN 1
#endif
#endif

#ifdef CORO_ASAN
#include <dlfcn.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

struct sim_coro {
    ucontext_t ctx;    /* the coroutine's, while it is not running */
    ucontext_t caller; /* the resumer's, while the coroutine runs */
    void (*fn)(sim_coro *co, void *arg);
    void *arg;
    void *map;       /* the mapping: a guard page, then the stack */
    size_t map_size;
    void *stack;     /* lowest usable byte of the stack */
    size_t stack_size;
    bool done;
    int (*swap)(ucontext_t *from, const ucontext_t *to);
#ifdef CORO_ASAN
    /* ASan's fake stack of the side that switched away, and the
     * resumer's stack as ASan learnt it when the coroutine was entered. */
    void *fake;
    const void *caller_bottom;
    size_t caller_size;
#endif
#ifdef CORO_TSAN
    void *fiber, *caller_fiber;
#endif
};

/* Switch from the coroutine to its resumer; `last`: it will never be
 * resumed again (ASan then drops its fake stack). */
static void to_caller(sim_coro *co, bool last)
{
#ifdef CORO_ASAN
    __sanitizer_start_switch_fiber(last ? NULL : &co->fake, co->caller_bottom, co->caller_size);
#endif
#ifdef CORO_TSAN
    __tsan_switch_to_fiber(co->caller_fiber, 0);
#endif
    co->swap(&co->ctx, &co->caller);
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(co->fake, &co->caller_bottom, &co->caller_size);
#endif
    (void)last;
}

/* makecontext passes int arguments only: the coroutine's address goes in
 * two halves. */
static void trampoline(unsigned hi, unsigned lo)
{
    sim_coro *co = (sim_coro *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo);
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &co->caller_bottom, &co->caller_size);
#endif
    co->fn(co, co->arg);
    co->done = true;
    to_caller(co, true);
    abort(); /* resumed after it returned: sim_coro_resume's contract */
}

int sim_coro_new(void (*fn)(sim_coro *co, void *arg), void *arg, size_t stack, sim_coro **out,
                 cs_error *err)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    stack = (stack + pg - 1) / pg * pg;
    sim_coro *co = calloc(1, sizeof *co);
    if (co == NULL)
        return cs_errorf(err, CS_ENOMEM, "coroutine: out of memory");
    co->fn = fn;
    co->arg = arg;
    co->map_size = stack + pg;
    /* NORESERVE: a stack costs what the loop touches, not its size. */
    co->map = mmap(NULL, co->map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (co->map == MAP_FAILED) {
        free(co);
        return cs_errorf(err, CS_ENOMEM, "coroutine: cannot map a %zu-byte stack", stack);
    }
    /* The guard page: an overflow faults instead of writing the heap. */
    if (mprotect(co->map, pg, PROT_NONE) != 0) {
        munmap(co->map, co->map_size);
        free(co);
        return cs_errorf(err, CS_ENOMEM, "coroutine: cannot protect the stack's guard page");
    }
    co->stack = (char *)co->map + pg;
    co->stack_size = stack;
    if (getcontext(&co->ctx) != 0) {
        munmap(co->map, co->map_size);
        free(co);
        return cs_errorf(err, CS_EIO, "coroutine: getcontext failed");
    }
    co->ctx.uc_stack.ss_sp = co->stack;
    co->ctx.uc_stack.ss_size = co->stack_size;
    co->ctx.uc_link = NULL; /* the trampoline never returns */
    uintptr_t p = (uintptr_t)co;
    makecontext(&co->ctx, (void (*)(void))trampoline, 2, (unsigned)(p >> 16 >> 16),
                (unsigned)(p & 0xffffffffu));
    co->swap = swapcontext;
#ifdef CORO_ASAN
    /* ASan's swapcontext interceptor writes a warning on stderr at its
     * first call, annotated switches or not (and cellsim's output is
     * checked to be clean): call glibc's own, which the interceptor would
     * call after it. */
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    void *real = libc != NULL ? dlsym(libc, "swapcontext") : NULL;
    if (real != NULL)
        memcpy(&co->swap, &real, sizeof co->swap); /* ISO C has no cast from void * */
    if (libc != NULL)
        dlclose(libc);
#endif
#ifdef CORO_TSAN
    co->fiber = __tsan_create_fiber(0);
#endif
    *out = co;
    return CS_OK;
}

void sim_coro_resume(sim_coro *co)
{
#ifdef CORO_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, co->stack, co->stack_size);
#endif
#ifdef CORO_TSAN
    co->caller_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(co->fiber, 0);
#endif
    co->swap(&co->caller, &co->ctx);
#ifdef CORO_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

void sim_coro_yield(sim_coro *co) { to_caller(co, false); }

bool sim_coro_done(const sim_coro *co) { return co->done; }

void sim_coro_free(sim_coro *co)
{
    if (co == NULL)
        return;
#ifdef CORO_TSAN
    __tsan_destroy_fiber(co->fiber);
#endif
    munmap(co->map, co->map_size);
    free(co);
}
