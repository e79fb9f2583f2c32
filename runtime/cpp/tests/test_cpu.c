/* Plain-C unit test of the CPU entry points of pomrt.h (no GPU, no TensorRT, no artifact):
 * the header compiles as C99, the schedule has its endpoints and shift, the noise is
 * deterministic and standard normal, bad arguments return codes with messages. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pomrt.h"

static int gFailures = 0;

#define CHECK(cond)                                                                                                    \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, #cond, pomrt_last_error()); \
            ++gFailures;                                                                                               \
        }                                                                                                              \
    } while (0)

static void testSchedule(void)
{
    float t[5];
    CHECK(pomrt_schedule(4, 1.0f, t) == POMRT_OK);
    CHECK(t[0] == 1.0f && t[4] == 0.0f && fabsf(t[1] - 0.75f) < 1e-7f && fabsf(t[2] - 0.5f) < 1e-7f);
    CHECK(pomrt_schedule(4, 3.0f, t) == POMRT_OK);
    /* shift 3 at t = 0.5: 1.5 / 2 = 0.75 */
    CHECK(t[0] == 1.0f && t[4] == 0.0f && fabsf(t[2] - 0.75f) < 1e-7f);
    CHECK(pomrt_schedule(0, 1.0f, t) == POMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(pomrt_last_error(), "steps") != NULL);
    CHECK(pomrt_schedule(4, -1.0f, t) == POMRT_ERR_INVALID_ARGUMENT);
    CHECK(pomrt_schedule(4, 1.0f, NULL) == POMRT_ERR_INVALID_ARGUMENT);
}

static void testNoise(void)
{
    enum { kN = 20000 };
    static float a[kN], b[kN], c[kN];
    double sum = 0.0, sq = 0.0;
    int i, same = 0;
    CHECK(pomrt_noise(7, 1, 3, kN, a) == POMRT_OK);
    CHECK(pomrt_noise(7, 1, 3, kN, b) == POMRT_OK);
    CHECK(pomrt_noise(7, 1, 4, kN, c) == POMRT_OK);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    for (i = 0; i < kN; ++i)
    {
        sum += a[i];
        sq += (double) a[i] * a[i];
        same += a[i] == c[i];
    }
    /* 20000 samples: the mean's standard error is 0.007, the variance's 0.01 */
    CHECK(fabs(sum / kN) < 0.04);
    CHECK(fabs(sq / kN - 1.0) < 0.05);
    CHECK(same < 10);
}

static void testErrors(void)
{
    char err[256];
    pomrt_model_info info;
    CHECK(pomrt_verify_artifact("/nonexistent/artifact", err, sizeof(err)) == POMRT_ERR_ARTIFACT);
    CHECK(strstr(err, "not an artifact directory") != NULL);
    CHECK(strcmp(err, pomrt_last_error()) == 0);
    CHECK(pomrt_verify_artifact(NULL, err, sizeof(err)) == POMRT_ERR_INVALID_ARGUMENT);
    memset(&info, 0, sizeof(info));
    CHECK(pomrt_artifact_info("/nonexistent", &info) == POMRT_ERR_INVALID_ARGUMENT); /* struct_size 0 */
    CHECK(pomrt_schedule(2, 1.0f, (float[3]){0}) == POMRT_OK);
    CHECK(pomrt_last_error()[0] == '\0');
}

static void testRuntimeWithoutTensorRT(void)
{
    pomrt_runtime* rt = (pomrt_runtime*) 1;
    pomrt_options options;
    if (pomrt_has_tensorrt())
    {
        return;
    }
    pomrt_default_options(&options);
    CHECK(options.struct_size == sizeof(options) && options.steps == 20 && options.slots == 1);
    CHECK(pomrt_create("/tmp", &options, &rt) == POMRT_ERR_UNSUPPORTED);
    CHECK(rt == NULL);
    CHECK(strstr(pomrt_last_error(), "without TensorRT") != NULL);
    pomrt_destroy(NULL);
}

/* The decoding calls (issue 21) need a runtime: a CPU-only build says so, not "NULL handle". */
static void testDecodingWithoutTensorRT(void)
{
    float rgb[3 * 4 * 4];
    int32_t written = 7;
    pomrt_rgb_info info;
    char plan[8] = "x";
    if (pomrt_has_tensorrt())
    {
        return;
    }
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    CHECK(pomrt_decode_info(NULL, &info) == POMRT_ERR_UNSUPPORTED);
    CHECK(strstr(pomrt_last_error(), "without TensorRT") != NULL);
    CHECK(pomrt_next_rgb(NULL, 0, rgb, sizeof(rgb), &written) == POMRT_ERR_UNSUPPORTED);
    CHECK(strstr(pomrt_last_error(), "without TensorRT") != NULL);
    CHECK(written == 0);
    /* The engine choice is CPU code: it reads the artifact like every CPU entry point. */
    CHECK(pomrt_artifact_decoder_engine("/nonexistent", "first", "10.3.0", "Orin", 87, plan, sizeof(plan))
        == POMRT_ERR_ARTIFACT);
    CHECK(plan[0] == '\0');
    CHECK(pomrt_artifact_decoder_engine("/nonexistent", NULL, "10.3.0", "Orin", 87, plan, sizeof(plan))
        == POMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(pomrt_last_error(), "role is NULL") != NULL);
}

int main(void)
{
    testSchedule();
    testNoise();
    testErrors();
    testRuntimeWithoutTensorRT();
    testDecodingWithoutTensorRT();
    if (gFailures == 0)
    {
        printf("pomrt_test_cpu: all checks passed (%s)\n", pomrt_version());
    }
    return gFailures == 0 ? 0 : 1;
}
