/* A consumer of an exported version that is not Python: TensorFlow's C API, which wraps the C++ SavedModel loader
 * that TF Serving's model server is built on.
 *
 *   consume <version folder> <num_samples> <seed0> <seed1> <output prefix>
 *
 * Loads the version with the "serve" tag, reads the signature defs from its MetaGraphDef (the tensor names are not
 * hard-coded: they are looked up by signature name and input/output key, as a server does), runs "sample" with
 * num_samples and seed, then "elbo" on the images it drew. Writes <prefix>.sample.u8 (the uint8 images, raw,
 * [n, H, W, 3]), <prefix>.elbo.f32 and <prefix>.kl.f32 (elbo_bpd and kl_bpd, float32, n each), and prints the
 * images' shape.
 * Exit 1 with a line on stderr on any failure. Built and run by tests/test_export.py (docs/sampling_and_serving.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

#define MAX_TENSORS 8
#define MAX_NAME 256

typedef struct {
  char key[MAX_NAME];
  char tensor[MAX_NAME]; /* "operation:index" */
} Binding;

typedef struct {
  Binding inputs[MAX_TENSORS], outputs[MAX_TENSORS];
  int num_inputs, num_outputs;
} Signature;

static void fail(const char* what, const char* detail) {
  fprintf(stderr, "ERROR: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* --- just enough of the protocol buffer wire format to read MetaGraphDef.signature_def --- */

typedef struct {
  const uint8_t* at;
  const uint8_t* end;
} Reader;

static uint64_t varint(Reader* r) {
  uint64_t value = 0;
  for (int shift = 0; r->at < r->end && shift < 64; shift += 7) {
    uint8_t byte = *r->at++;
    value |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return value;
  }
  fail("damaged MetaGraphDef", "bad varint");
  return 0;
}

/* Reads the next field: its number, and for a length-delimited field its bytes (else skips the value).
 * Returns 0 at the end. */
static int next_field(Reader* r, int* number, Reader* bytes) {
  if (r->at >= r->end) return 0;
  uint64_t tag = varint(r);
  *number = (int)(tag >> 3);
  bytes->at = bytes->end = NULL;
  switch (tag & 7) {
    case 0: varint(r); break;
    case 1: r->at += 8; break;
    case 5: r->at += 4; break;
    case 2: {
      uint64_t length = varint(r);
      if (length > (uint64_t)(r->end - r->at)) fail("damaged MetaGraphDef", "field longer than its message");
      bytes->at = r->at;
      bytes->end = r->at + length;
      r->at += length;
      break;
    }
    default: fail("damaged MetaGraphDef", "unknown wire type");
  }
  if (r->at > r->end) fail("damaged MetaGraphDef", "truncated");
  return 1;
}

static void copy_string(Reader bytes, char* out) {
  size_t length = (size_t)(bytes.end - bytes.at);
  if (length >= MAX_NAME) fail("name too long in MetaGraphDef", NULL);
  memcpy(out, bytes.at, length);
  out[length] = 0;
}

/* A map<string, TensorInfo> entry: key (1) and TensorInfo (2), whose name is field 1. */
static void read_binding(Reader entry, Binding* binding) {
  int number;
  Reader bytes;
  binding->key[0] = binding->tensor[0] = 0;
  while (next_field(&entry, &number, &bytes)) {
    if (number == 1) copy_string(bytes, binding->key);
    if (number == 2) {
      int inner;
      Reader info = bytes, name;
      while (next_field(&info, &inner, &name))
        if (inner == 1) copy_string(name, binding->tensor);
    }
  }
}

/* Finds signature `wanted` in a serialized MetaGraphDef (signature_def is field 5: entries of key 1, SignatureDef 2;
 * a SignatureDef's inputs are field 1 and its outputs field 2). Returns 1 when found. */
static int find_signature(const TF_Buffer* meta_graph, const char* wanted, Signature* signature) {
  Reader meta = {(const uint8_t*)meta_graph->data, (const uint8_t*)meta_graph->data + meta_graph->length};
  int number;
  Reader entry;
  while (next_field(&meta, &number, &entry)) {
    if (number != 5) continue;
    char key[MAX_NAME] = "";
    Reader definition = {NULL, NULL}, bytes;
    int field;
    while (next_field(&entry, &field, &bytes)) {
      if (field == 1) copy_string(bytes, key);
      if (field == 2) definition = bytes;
    }
    if (strcmp(key, wanted) != 0 || definition.at == NULL) continue;
    memset(signature, 0, sizeof(*signature));
    while (next_field(&definition, &field, &bytes)) {
      if (field == 1 && signature->num_inputs < MAX_TENSORS)
        read_binding(bytes, &signature->inputs[signature->num_inputs++]);
      if (field == 2 && signature->num_outputs < MAX_TENSORS)
        read_binding(bytes, &signature->outputs[signature->num_outputs++]);
    }
    return 1;
  }
  return 0;
}

/* The graph output a binding names ("operation:index"). */
static TF_Output output_of(TF_Graph* graph, const Binding* bindings, int count, const char* key) {
  for (int i = 0; i < count; ++i) {
    if (strcmp(bindings[i].key, key) != 0) continue;
    char operation[MAX_NAME];
    strcpy(operation, bindings[i].tensor);
    char* colon = strrchr(operation, ':');
    int index = 0;
    if (colon) {
      index = atoi(colon + 1);
      *colon = 0;
    }
    TF_Operation* op = TF_GraphOperationByName(graph, operation);
    if (!op) fail("no such operation in the graph", operation);
    TF_Output output = {op, index};
    return output;
  }
  fail("the signature has no tensor with this key", key);
  TF_Output none = {NULL, 0};
  return none;
}

static void check(TF_Status* status, const char* what) {
  if (TF_GetCode(status) != TF_OK) fail(what, TF_Message(status));
}

static void write_file(const char* prefix, const char* suffix, const void* data, size_t size) {
  char path[4096];
  snprintf(path, sizeof(path), "%s%s", prefix, suffix);
  FILE* file = fopen(path, "wb");
  if (!file || fwrite(data, 1, size, file) != size || fclose(file) != 0) fail("cannot write", path);
}

static void no_free(void* data, size_t length, void* arg) { (void)data, (void)length, (void)arg; }

int main(int argc, char** argv) {
  if (argc != 6) fail("usage", "consume <version folder> <num_samples> <seed0> <seed1> <output prefix>");
  int32_t num_samples = atoi(argv[2]), seed[2] = {atoi(argv[3]), atoi(argv[4])};

  TF_Status* status = TF_NewStatus();
  TF_Graph* graph = TF_NewGraph();
  TF_SessionOptions* options = TF_NewSessionOptions();
  TF_Buffer* meta_graph = TF_NewBuffer();
  const char* tags[] = {"serve"};
  TF_Session* session = TF_LoadSessionFromSavedModel(options, NULL, argv[1], tags, 1, graph, meta_graph, status);
  check(status, "loading the SavedModel");

  Signature sample, elbo;
  if (!find_signature(meta_graph, "sample", &sample)) fail("no signature", "sample");
  if (!find_signature(meta_graph, "elbo", &elbo)) fail("no signature", "elbo");

  /* sample(num_samples, seed) -> images */
  TF_Output sample_inputs[2] = {output_of(graph, sample.inputs, sample.num_inputs, "num_samples"),
                                output_of(graph, sample.inputs, sample.num_inputs, "seed")};
  int64_t seed_dims[1] = {2};
  TF_Tensor* sample_values[2] = {
      TF_NewTensor(TF_INT32, NULL, 0, &num_samples, sizeof(num_samples), no_free, NULL),
      TF_NewTensor(TF_INT32, seed_dims, 1, seed, sizeof(seed), no_free, NULL)};
  TF_Output images_output = output_of(graph, sample.outputs, sample.num_outputs, "images");
  TF_Tensor* images = NULL;
  TF_SessionRun(session, NULL, sample_inputs, sample_values, 2, &images_output, &images, 1, NULL, 0, NULL, status);
  check(status, "running signature sample");
  if (TF_TensorType(images) != TF_UINT8 || TF_NumDims(images) != 4) fail("sample", "images are not uint8 [n,H,W,3]");
  write_file(argv[5], ".sample.u8", TF_TensorData(images), TF_TensorByteSize(images));

  /* elbo(images) -> elbo_bpd, kl_bpd */
  TF_Output elbo_input = output_of(graph, elbo.inputs, elbo.num_inputs, "images");
  TF_Output elbo_outputs[2] = {output_of(graph, elbo.outputs, elbo.num_outputs, "elbo_bpd"),
                               output_of(graph, elbo.outputs, elbo.num_outputs, "kl_bpd")};
  TF_Tensor* figures[2] = {NULL, NULL};
  TF_SessionRun(session, NULL, &elbo_input, &images, 1, elbo_outputs, figures, 2, NULL, 0, NULL, status);
  check(status, "running signature elbo");
  for (int i = 0; i < 2; ++i) {
    if (TF_TensorType(figures[i]) != TF_FLOAT) fail("elbo", "outputs are not float32");
    write_file(argv[5], i == 0 ? ".elbo.f32" : ".kl.f32", TF_TensorData(figures[i]), TF_TensorByteSize(figures[i]));
  }
  printf("images %lld %lld %lld %lld\n", (long long)TF_Dim(images, 0), (long long)TF_Dim(images, 1),
         (long long)TF_Dim(images, 2), (long long)TF_Dim(images, 3));

  for (int i = 0; i < 2; ++i) TF_DeleteTensor(sample_values[i]), TF_DeleteTensor(figures[i]);
  TF_DeleteTensor(images);
  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteBuffer(meta_graph);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return 0;
}
