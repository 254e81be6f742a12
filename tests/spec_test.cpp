// The spec loader and the graph-expression parser: what a spec file turns
// into (inputs, models, nodes, outputs, positions) and every error path.
// Parsing never loads model files, so the specs name files that do not exist.

#include "stitch/spec.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "stitch/ops.h"
#include "test_util.h"

namespace stitch {
namespace {

// Raw strings start on the line after R"Y(; drop that first newline so the
// line numbers in assertions are the ones seen in the test.
std::string text(const char* raw) {
  std::string s(raw);
  return s.rfind('\n', 0) == 0 ? s.substr(1) : s;
}

Spec parse(const char* raw) {
  return parse_spec(text(raw), "spec.yaml");
}

const Node& named(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes()) {
    if (n.name == name) return n;
  }
  throw std::runtime_error("no node named " + name);
}

const Node& arg_node(const Graph& g, const Node& n, size_t k) {
  return g.node(std::get<Value>(n.args.at(k)));
}

const Literal& arg_literal(const Node& n, size_t k) {
  return std::get<Literal>(n.args.at(k));
}

// The spec at the top of PRODUCT.md's "The spec file (YAML)".
const char* kLateFusion = R"Y(
# late fusion of two frozen pretrained models (seed 002, strategy 1)
inputs:
  image: [N, 3, 224, 224]          # an identifier (N) is a dynamic dimension
  audio: [N, 16000]
  tokens: {shape: [N, 32], dtype: int64}
models:
  vision: {file: resnet18.pt, cut: avgpool, freeze: true}   # paths relative to the spec
  speech: {file: wav2vec2.pt, freeze: true}
graph:
  - img    = flatten(vision(image))
  - aud    = mean(speech(audio)[0], dim=1)
  - logits = linear(concat(img, aud, dim=1), 5)
outputs: [logits]
)Y";

// Model surgery, PRODUCT.md (seed 002, strategy 2).
const char* kSurgery = R"Y(
inputs:
  image: [N, 3, 224, 224]
  depth_map: [N, 1, 224, 224]
models:
  rgb_low:  {file: resnet18.pt, cut: layer3}
  rgb_high: {file: resnet18.pt, after: layer3}
  depth:    {file: depth_net.pt}
graph:
  - fused  = conv(concat(rgb_low(image), depth(depth_map), dim=1), 256, kernel=3, padding=1)
  - logits = rgb_high(fused)
outputs: [logits]
)Y";

// ---- The product's example specs ------------------------------------------

TEST(SpecExamples, LateFusionSpecParsesIntoInputsModelsNodesAndOutputs) {
  Spec spec = parse(kLateFusion);
  const Graph& g = spec.graph;

  ASSERT_EQ(g.inputs().size(), 3u);
  const Node& image = g.nodes()[g.inputs()[0]];
  EXPECT_EQ(image.name, "image");
  EXPECT_EQ(shape_str(image.shape), "[N, 3, 224, 224]");
  EXPECT_EQ(image.dtype, at::kFloat);
  EXPECT_FALSE(image.shape[0].is_static());
  const Node& tokens = g.nodes()[g.inputs()[2]];
  EXPECT_EQ(tokens.name, "tokens");
  EXPECT_EQ(shape_str(tokens.shape), "[N, 32]");
  EXPECT_EQ(tokens.dtype, at::kLong);

  ASSERT_EQ(g.model_order(), (std::vector<std::string>{"vision", "speech"}));
  EXPECT_EQ(g.model("vision").cut, "avgpool");
  EXPECT_TRUE(g.model("vision").freeze_all);
  EXPECT_EQ(g.model("vision").file, std::filesystem::path("resnet18.pt"));
  EXPECT_EQ(g.model("speech").method, "forward");
  EXPECT_EQ(g.model("vision").loc.line, 7);
  EXPECT_EQ(g.model("vision").loc.column, 3);

  const Node& img = named(g, "img");
  EXPECT_EQ(img.kind, Node::Kind::Op);
  EXPECT_EQ(img.op, "flatten");
  const Node& call = arg_node(g, img, 0);
  EXPECT_EQ(call.kind, Node::Kind::Call);
  EXPECT_EQ(call.op, "vision");
  EXPECT_EQ(arg_node(g, call, 0).name, "image");

  const Node& aud = named(g, "aud");
  EXPECT_EQ(aud.op, "mean");
  ASSERT_NE(aud.kwarg("dim"), nullptr);
  EXPECT_EQ(aud.kwarg("dim")->i, 1);
  const Node& index = arg_node(g, aud, 0);
  EXPECT_EQ(index.kind, Node::Kind::Index);
  EXPECT_EQ(arg_literal(index, 1).i, 0);
  EXPECT_EQ(arg_node(g, index, 0).op, "speech");

  const Node& logits = named(g, "logits");
  EXPECT_EQ(logits.op, "linear");
  EXPECT_EQ(logits.kwarg("out")->i, 5);
  EXPECT_TRUE(logits.kwarg("bias")->b);  // the default, filled in
  const Node& concat = arg_node(g, logits, 0);
  EXPECT_EQ(concat.op, "concat");
  EXPECT_EQ(concat.args.size(), 2u);

  ASSERT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.outputs()[0].first, "logits");
  EXPECT_EQ(&g.node(g.outputs()[0].second), &logits);
  EXPECT_EQ(g.output_locs()[0].line, 13);
  EXPECT_TRUE(spec.train_yaml.empty());
}

TEST(SpecExamples, ModelSurgerySpecParsesCutAndAfterSlices) {
  Spec spec = parse(kSurgery);
  const Graph& g = spec.graph;
  EXPECT_EQ(g.model("rgb_low").cut, "layer3");
  EXPECT_EQ(g.model("rgb_high").after, "layer3");
  EXPECT_TRUE(g.model("rgb_high").cut.empty());
  const Node& fused = named(g, "fused");
  EXPECT_EQ(fused.op, "conv");
  EXPECT_EQ(fused.kwarg("out")->i, 256);
  EXPECT_EQ(fused.kwarg("kernel")->i, 3);
  EXPECT_EQ(fused.kwarg("padding")->i, 1);
  EXPECT_EQ(fused.kwarg("stride")->i, 1);
  const Node& concat = arg_node(g, fused, 0);
  EXPECT_EQ(arg_node(g, concat, 0).op, "rgb_low");
  EXPECT_EQ(arg_node(g, concat, 1).op, "depth");
  const Node& logits = named(g, "logits");
  EXPECT_EQ(logits.kind, Node::Kind::Call);
  EXPECT_EQ(arg_node(g, logits, 0).name, "fused");
}

TEST(SpecExamples, TrainSectionIsKeptAsYamlText) {
  std::string yaml = text(kLateFusion) + R"Y(seed: 7
train:
  data: pairs.pt
  loss: cross_entropy(logits, labels)
  optimizer: adamw
  lr_for: {vision: 1e-5}
)Y";
  Spec spec = parse_spec(yaml, "spec.yaml");
  EXPECT_EQ(spec.graph.seed, 7u);
  EXPECT_NE(spec.train_yaml.find("optimizer: adamw"), std::string::npos);
  EXPECT_NE(spec.train_yaml.find("cross_entropy(logits, labels)"), std::string::npos);
  EXPECT_EQ(spec.train_yaml.find("inputs"), std::string::npos);
}

// ---- Models and files --------------------------------------------------------

TEST(SpecModels, ModelFilesAreRelativeToTheSpecFolderNotTheCwd) {
  Spec spec = parse_spec(text(R"Y(
inputs: {x: [N, 10]}
models:
  a: {file: a.pt}
  b: {file: sub/b.pt}
  c: {file: /abs/c.pt}
graph:
  - y = c(b(a(x)))
outputs: [y]
)Y"),
                         "/specs/dir/spec.yaml");
  EXPECT_EQ(spec.graph.model("a").file, std::filesystem::path("/specs/dir/a.pt"));
  EXPECT_EQ(spec.graph.model("b").file, std::filesystem::path("/specs/dir/sub/b.pt"));
  EXPECT_EQ(spec.graph.model("c").file, std::filesystem::path("/abs/c.pt"));
  EXPECT_EQ(spec.file, std::filesystem::path("/specs/dir/spec.yaml"));
  // The artifact's copy of the spec is the spec as resolved: absolute paths.
  EXPECT_NE(spec.graph.spec_yaml.find("file: /specs/dir/a.pt"), std::string::npos);
  EXPECT_NE(spec.graph.spec_yaml.find("file: /specs/dir/sub/b.pt"), std::string::npos);
  EXPECT_NE(spec.graph.spec_yaml.find("file: /abs/c.pt"), std::string::npos);
  Spec back = parse_spec(spec.graph.spec_yaml, "/elsewhere/spec.yaml");
  EXPECT_EQ(back.graph.model("b").file, std::filesystem::path("/specs/dir/sub/b.pt"));
}

TEST(SpecModels, TheArtifactsCopyResolvesTrainPathsToo) {
  Spec spec = parse_spec(text(R"Y(
inputs: {x: [N, 10]}
models:
  a: {file: ../a.pt}
graph:
  - y = a(x)
outputs: [y]
train: {data: data/d.pt, out: runs/x, loss: "mse(y, t)", feed: {x: x, t: t}}
)Y"),
                         "/specs/dir/spec.yaml");
  const std::string& yaml = spec.graph.spec_yaml;
  EXPECT_NE(yaml.find("file: /specs/a.pt"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("data: /specs/dir/data/d.pt"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("out: /specs/dir/runs/x"), std::string::npos) << yaml;
  // What training reads is the train section as written, resolved by itself.
  EXPECT_NE(spec.train_yaml.find("data: data/d.pt"), std::string::npos);
}

TEST(SpecModels, FreezeTapsAndMethodAreRead) {
  Spec spec = parse(R"Y(
inputs: {x: [N, 3, 32, 32]}
models:
  a: {file: a.pt, freeze: [conv1.*, layer1.*], taps: [layer1, layer2.0], method: embed}
  b: {file: b.pt, freeze: false}
graph:
  - y = a(x)["layer1"]
  - z = b(y)
outputs: [z]
)Y");
  const ModelSpec& a = spec.graph.model("a");
  EXPECT_FALSE(a.freeze_all);
  EXPECT_EQ(a.freeze, (std::vector<std::string>{"conv1.*", "layer1.*"}));
  EXPECT_EQ(a.taps, (std::vector<std::string>{"layer1", "layer2.0"}));
  EXPECT_EQ(a.method, "embed");
  EXPECT_FALSE(spec.graph.model("b").freeze_all);
  EXPECT_TRUE(spec.graph.model("b").freeze.empty());
}

TEST(SpecModels, InputsKeepTheirDeclaredOrderAndProductDims) {
  Spec spec = parse(R"Y(
inputs:
  zeta: [N, 4]
  alpha: [N, T, 2*N]
  mid: {shape: [1, 2], dtype: float64}
graph:
  - y = concat(zeta, zeta)
outputs: y
)Y");
  const Graph& g = spec.graph;
  ASSERT_EQ(g.inputs().size(), 3u);
  EXPECT_EQ(g.nodes()[g.inputs()[0]].name, "zeta");
  EXPECT_EQ(g.nodes()[g.inputs()[1]].name, "alpha");
  EXPECT_EQ(shape_str(g.nodes()[g.inputs()[1]].shape), "[N, T, 2*N]");
  EXPECT_EQ(g.nodes()[g.inputs()[2]].dtype, at::kDouble);
  // `outputs: y` (one name, not a list) is accepted.
  ASSERT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.outputs()[0].first, "y");
}

TEST(SpecModels, LoadSpecReadsTheFileAndNamesItInErrors) {
  const auto dir = std::filesystem::temp_directory_path() / "stitch_spec_test";
  std::filesystem::create_directories(dir);
  const auto file = dir / "spec.yaml";
  {
    std::ofstream out(file);
    out << text(kLateFusion);
  }
  Spec spec = load_spec(file);
  EXPECT_EQ(spec.graph.model("vision").file, dir / "resnet18.pt");
  {
    std::ofstream out(file);
    out << "inputs: {x: [N, 2]}\ngraph:\n  - y = relu(q)\noutputs: [y]\n";
  }
  EXPECT_THROW_WITH(load_spec(file), file.string() + ":3:14: unknown name 'q'");
  std::filesystem::remove_all(dir);
}

TEST(SpecModels, MissingSpecFileIsAnIoError) {
  EXPECT_THROW((void)load_spec("/nonexistent/spec.yaml"), IoError);
  EXPECT_THROW_WITH(load_spec("/nonexistent/spec.yaml"), "/nonexistent/spec.yaml");
}

// ---- Expressions -------------------------------------------------------------

const char* kTwoInputs = R"Y(
inputs:
  a: [N, 8]
  b: [N, 8]
models:
  head: {file: head.pt}
graph:
  - y = %s
outputs: [y]
)Y";

Spec parse_expr(const std::string& expression) {
  std::string yaml = text(kTwoInputs);
  yaml.replace(yaml.find("%s"), 2, expression);
  return parse_spec(yaml, "spec.yaml");
}

TEST(SpecExpressions, LiteralsOfEveryKindBecomeArguments) {
  {
    Spec s = parse_expr("reshape(a, [-1, 2, 4])");
    const Literal* shape = named(s.graph, "y").kwarg("shape");
    ASSERT_NE(shape, nullptr);
    EXPECT_EQ(shape->str(), "[-1, 2, 4]");
  }
  {
    Spec s = parse_expr("normalize(a, mean=[0.5, 1e-3, 2], std=[1.5E+2, .25e0, 3.])");
    EXPECT_EQ(named(s.graph, "y").kwarg("mean")->items[1].f, 1e-3);
    EXPECT_EQ(named(s.graph, "y").kwarg("std")->items[0].f, 150.0);
  }
  {
    Spec s = parse_expr("scale_offset(a, scale=-0.5, offset=-2, learnable=false)");
    const Node& y = named(s.graph, "y");
    EXPECT_EQ(y.kwarg("scale")->f, -0.5);
    EXPECT_EQ(y.kwarg("offset")->i, -2);
    EXPECT_FALSE(y.kwarg("learnable")->b);
  }
  {
    Spec s = parse_expr("pool(a, 'max')");
    EXPECT_EQ(named(s.graph, "y").kwarg("kind")->s, "max");
  }
  {
    Spec s = parse_expr("mlp(a, [16, 4], act=\"gelu\", dropout=0.1,)");
    EXPECT_EQ(named(s.graph, "y").kwarg("act")->s, "gelu");
  }
}

TEST(SpecExpressions, NamesInsideListsAreStringsSoShapesReadNaturally) {
  Spec s = parse_expr("adapt(a, to=[N, 2, 4])");
  const Literal* to = named(s.graph, "y").kwarg("to");
  ASSERT_NE(to, nullptr);
  ASSERT_EQ(to->items.size(), 3u);
  EXPECT_EQ(to->items[0].kind, Literal::Kind::String);
  EXPECT_EQ(to->items[0].s, "N");
  EXPECT_EQ(to->items[2].i, 4);
}

TEST(SpecExpressions, KeywordNamingAModelIsTheModelsName) {
  Spec s = parse_expr("adapt(a, like=head)");
  const Literal* like = named(s.graph, "y").kwarg("like");
  ASSERT_NE(like, nullptr);
  EXPECT_EQ(like->kind, Literal::Kind::String);
  EXPECT_EQ(like->s, "head");
}

TEST(SpecExpressions, IndexAndAttributeNodes) {
  Spec s = parse_expr("head(a)[\"logits\"].pooled[-1]");
  const Graph& g = s.graph;
  const Node& last = named(g, "y");
  EXPECT_EQ(last.kind, Node::Kind::Index);
  EXPECT_EQ(arg_literal(last, 1).i, -1);
  const Node& attr = arg_node(g, last, 0);
  EXPECT_EQ(attr.kind, Node::Kind::Attr);
  EXPECT_EQ(attr.op, "pooled");
  const Node& key = arg_node(g, attr, 0);
  EXPECT_EQ(key.kind, Node::Kind::Index);
  EXPECT_EQ(arg_literal(key, 1).s, "logits");
  EXPECT_EQ(arg_node(g, key, 0).kind, Node::Kind::Call);
}

TEST(SpecExpressions, MultiplicationBindsTighterThanAdditionAndBothAssociateLeft) {
  {
    Spec s = parse_expr("a + b * 2");
    const Graph& g = s.graph;
    const Node& add = named(g, "y");
    EXPECT_EQ(add.op, "add");
    EXPECT_EQ(arg_node(g, add, 0).name, "a");
    const Node& mul = arg_node(g, add, 1);
    EXPECT_EQ(mul.op, "mul");
    EXPECT_EQ(arg_node(g, mul, 0).name, "b");
    EXPECT_EQ(arg_literal(mul, 1).i, 2);
  }
  {
    Spec s = parse_expr("a - b - a");
    const Graph& g = s.graph;
    const Node& outer = named(g, "y");
    EXPECT_EQ(outer.op, "sub");
    EXPECT_EQ(arg_node(g, outer, 0).op, "sub");
    EXPECT_EQ(arg_node(g, outer, 1).name, "a");
  }
  {
    Spec s = parse_expr("(a + b) * b");
    const Graph& g = s.graph;
    EXPECT_EQ(named(g, "y").op, "mul");
    EXPECT_EQ(arg_node(g, named(g, "y"), 0).op, "add");
  }
}

TEST(SpecExpressions, NumbersFoldAndUnaryMinusNegates) {
  {
    Spec s = parse_expr("2 * 3 * a");
    const Node& y = named(s.graph, "y");
    EXPECT_EQ(y.op, "mul");
    EXPECT_EQ(arg_literal(y, 0).i, 6);
  }
  {
    Spec s = parse_expr("-a");
    const Node& y = named(s.graph, "y");
    EXPECT_EQ(y.op, "mul");
    EXPECT_EQ(arg_literal(y, 1).i, -1);
  }
  {
    Spec s = parse_expr("a - -0.5");
    const Node& y = named(s.graph, "y");
    EXPECT_EQ(y.op, "sub");
    EXPECT_EQ(arg_literal(y, 1).f, -0.5);
  }
}

TEST(SpecExpressions, AliasRecordsTheNameWithoutRenaming) {
  Spec s = parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - h = relu(x)
  - same = h
  - raw = (x)
  - z = add(same, raw)
outputs: [same, raw, z]
)Y");
  const Graph& g = s.graph;
  const Node& z = named(g, "z");
  EXPECT_EQ(arg_node(g, z, 0).name, "h");
  EXPECT_EQ(arg_node(g, z, 1).name, "x");
  EXPECT_EQ(g.outputs()[0].first, "same");
  EXPECT_EQ(g.node(g.outputs()[0].second).name, "h");
  EXPECT_EQ(g.node(g.outputs()[1].second).name, "x");
}

TEST(SpecExpressions, EveryNodeRecordsWhereItsSubexpressionStarts) {
  Spec s = parse(kLateFusion);
  const Graph& g = s.graph;
  // line 10: "  - img    = flatten(vision(image))"
  const Node& img = named(g, "img");
  EXPECT_EQ(img.loc.file, "spec.yaml");
  EXPECT_EQ(img.loc.line, 10);
  EXPECT_EQ(img.loc.column, 14);
  EXPECT_EQ(arg_node(g, img, 0).loc.column, 22);
  // line 11: "  - aud    = mean(speech(audio)[0], dim=1)"
  const Node& index = arg_node(g, named(g, "aud"), 0);
  EXPECT_EQ(index.loc.line, 11);
  EXPECT_EQ(index.loc.column, 19);
}

TEST(SpecExpressions, QuotedEntriesCountTheQuoteInColumns) {
  Spec s = parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - "y = relu(x)"
  - 'z = relu(y)'
outputs: [z]
)Y");
  EXPECT_EQ(named(s.graph, "y").loc.column, 10);
  EXPECT_EQ(named(s.graph, "z").loc.column, 10);
}

TEST(SpecExpressions, ParseExpressionResolvesNamesThroughTheScope) {
  Graph g;
  Value x = g.input("x", {N, 4});
  Value y = parse_expression(g, "linear(relu(x), 3)", {{"x", x}}, {"s.yaml", 2, 5});
  EXPECT_EQ(g.node(y).op, "linear");
  EXPECT_EQ(g.node(y).loc.column, 5);
  EXPECT_EQ(arg_node(g, g.node(y), 0).loc.column, 12);
  EXPECT_THROW_WITH(parse_expression(g, "relu(w)", {{"x", x}}, {"s.yaml", 2, 5}),
                    "s.yaml:2:10: unknown name 'w'");
  EXPECT_THROW_WITH(parse_expression(g, "3", {{"x", x}}, {}), "not the constant 3");
}

// ---- to_spec_yaml ------------------------------------------------------------

TEST(SpecWriting, GraphBuiltInCppReadsBackAsTheSameGraph) {
  Graph g;
  Value image = g.input("image", {N, 3, 32, 32});
  Value ids = g.input("ids", {N, 7}, at::kLong);
  auto vision = load("nets/vision.pt").cut("layer4").freeze();
  Value feats = flatten(vision(image));
  Value emb = mean(embedding(ids, 100, 16), 1);
  Value both = concat({feats, emb}, 1);
  Value logits = linear(both * 0.5 + both, 5, false);
  g.op("adapt", {feats}, {{"to", Literal(std::vector<Literal>{"N", int64_t{4}})}});
  g.output("logits", logits);
  g.output("feats", feats);
  g.seed = 3;

  const std::string yaml = to_spec_yaml(g);
  Spec back = parse_spec(yaml, "back.yaml");
  const Graph& h = back.graph;
  ASSERT_EQ(h.nodes().size(), g.nodes().size()) << yaml;
  for (size_t k = 0; k < g.nodes().size(); ++k) {
    EXPECT_EQ(h.nodes()[k].kind, g.nodes()[k].kind) << k << "\n" << yaml;
    EXPECT_EQ(h.nodes()[k].op, g.nodes()[k].op) << k << "\n" << yaml;
    EXPECT_EQ(h.nodes()[k].args.size(), g.nodes()[k].args.size()) << k;
    EXPECT_EQ(h.nodes()[k].kwargs.size(), g.nodes()[k].kwargs.size()) << k;
  }
  EXPECT_EQ(h.nodes()[h.inputs()[1]].dtype, at::kLong);
  EXPECT_TRUE(h.model("vision").freeze_all);
  EXPECT_EQ(h.model("vision").cut, "layer4");
  EXPECT_EQ(h.seed, 3u);
  ASSERT_EQ(h.outputs().size(), 2u);
  EXPECT_EQ(h.outputs()[1].first, "feats");
  EXPECT_EQ(h.node(h.outputs()[1].second).op, "flatten");
}

TEST(SpecWriting, ArithmeticIsWrittenWithTheParenthesesItNeeds) {
  Graph g;
  Value a = g.input("a", {N, 4});
  Value b = g.input("b", {N, 4});
  g.output("p", (a + b) * a);
  g.output("q", a - (b - a));
  g.output("r", a - b * 2.0 + a);
  g.output("s", (a + b)[int64_t{0}]);  // NOTE: a bare 0 is ambiguous in graph.h
  const std::string yaml = to_spec_yaml(g);
  EXPECT_NE(yaml.find("p = (a + b) * a"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("q = a - (b - a)"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("r = a - b * 2.0 + a"), std::string::npos) << yaml;
  Spec back = parse_spec(yaml, "back.yaml");
  const Graph& h = back.graph;
  ASSERT_EQ(h.nodes().size(), g.nodes().size()) << yaml;
  for (size_t k = 0; k < g.nodes().size(); ++k) {
    EXPECT_EQ(h.nodes()[k].op, g.nodes()[k].op) << k << "\n" << yaml;
    for (size_t j = 0; j < g.nodes()[k].args.size(); ++j) {
      const auto* v = std::get_if<Value>(&g.nodes()[k].args[j]);
      if (v != nullptr) {
        EXPECT_EQ(std::get<Value>(h.nodes()[k].args.at(j)).id(), v->id()) << k << "\n" << yaml;
      }
    }
  }
}

TEST(SpecWriting, SpecLoadedGraphRoundTrips) {
  Spec spec = parse(kLateFusion);
  Spec back = parse_spec(to_spec_yaml(spec.graph), "back.yaml");
  EXPECT_EQ(back.graph.nodes().size(), spec.graph.nodes().size());
  EXPECT_EQ(named(back.graph, "aud").op, "mean");
}

TEST(SpecWriting, AProbeValueReadsBackAsTheCppApiSetsIt) {
  Graph g;
  Value feats = g.input("feats", {N, Dim::symbol("T"), 80});
  Value frames = g.input("frames", {N}, at::kLong);
  g.probe_with(frames, Dim::symbol("T"));
  g.output("y", relu(feats));
  g.output("f", frames);
  const std::string yaml = to_spec_yaml(g);
  EXPECT_NE(yaml.find("probe: T"), std::string::npos) << yaml;
  Spec back = parse_spec(yaml, "back.yaml");
  const auto& probe = back.graph.nodes()[back.graph.inputs()[1]].probe;
  ASSERT_TRUE(probe.has_value()) << yaml;
  EXPECT_EQ(probe->str(), "T");
  EXPECT_FALSE(back.graph.nodes()[back.graph.inputs()[0]].probe.has_value());
}

TEST(SpecErrors, AProbeMustBeADimOfTheInputsOnAnIntegerInput) {
  EXPECT_THROW_WITH(parse("inputs: {x: {shape: [N, T], probe: 3}}\ngraph: [\"y = relu(x)\"]\n"
                          "outputs: [y]\n"),
                    "input 'x': probe: sets the value of integer inputs; float inputs are random");
  EXPECT_THROW_WITH(parse("inputs: {x: {shape: [N], dtype: int64, probe: S}}\n"
                          "graph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "input 'x': probe: S uses 'S', which no input's shape has");
  EXPECT_THROW_WITH(parse("inputs: {x: {shape: [N], dtype: int64, probe: {a: 1}}}\n"
                          "graph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "probe: of input 'x' must be an integer or a name like N, got a map");
}

TEST(SpecWriting, LongChainsAreSplitIntoStatementsThatReadBack) {
  Graph g;
  Value x = g.input("x", {N, 4});
  for (int k = 0; k < 1000; ++k) x = relu(x);
  g.output("y", x);
  Spec back = parse_spec(to_spec_yaml(g), "back.yaml");
  EXPECT_EQ(back.graph.nodes().size(), 1001u);
}

// ---- Errors: names -------------------------------------------------------------

TEST(SpecErrors, UnknownNameSuggestsNearestInput) {
  EXPECT_THROW_WITH(parse_expr("relu(bb)"), "spec.yaml:7:14: unknown name 'bb'");
  EXPECT_THROW_WITH(parse_expr("flatten(aa)"), "did you mean 'a'?");
  EXPECT_THROW_WITH(parse_expr("relu(hed)"), "did you mean 'head'?");
}

TEST(SpecErrors, UseBeforeAssignmentIsAnErrorWithLineAndColumn) {
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - a = relu(x)
  - c = add(a, b)
  - d = relu(a)
  - b = relu(a)
outputs: [c]
)Y"),
                    "spec.yaml:4:16: 'b' is used before it is assigned at line 6");
}

TEST(SpecErrors, CyclesAreReportedAsCycles) {
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - a = add(x, b)
  - b = relu(a)
outputs: [b]
)Y"),
                    "spec.yaml:3:16: 'b' is used before it is assigned at line 4; its "
                    "expression uses 'a', so the two form a cycle");
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - a = add(x, a)
outputs: [a]
)Y"),
                    "spec.yaml:3:16: 'a' is used in its own definition (a cycle)");
}

TEST(SpecErrors, NameAssignedTwiceIsAnError) {
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - a = relu(x)
  - a = tanh(x)
outputs: [a]
)Y"),
                    "spec.yaml:4:5: 'a' is assigned twice (first at line 3)");
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
graph:
  - x = relu(x)
outputs: [x]
)Y"),
                    "'x' is assigned twice (first at line 1)");
}

TEST(SpecErrors, ValueNamedLikeAModelIsAnError) {
  EXPECT_THROW_WITH(parse_expr("relu(a)\n  - head = relu(a)"), "'head' is the name of a model");
}

TEST(SpecErrors, ModelUsedWithoutCallingItIsAnError) {
  EXPECT_THROW_WITH(parse_expr("add(a, head)"), "'head' is a model; call it: head(x)");
  EXPECT_THROW_WITH(parse_expr("relu"), "'relu' is an op; call it: relu(x)");
}

TEST(SpecErrors, CallingAValueIsAnError) {
  EXPECT_THROW_WITH(parse_expr("a(b)"), "'a' is a value, not a model or an op");
}

TEST(SpecErrors, ModelCallsTakeTensorsOnly) {
  EXPECT_THROW_WITH(parse_expr("head(a, 3)"), "model 'head' takes tensors");
  EXPECT_THROW_WITH(parse_expr("head(a, k=3)"), "not keyword argument 'k'");
  EXPECT_THROW_WITH(parse_expr("head()"), "called with no arguments");
}

TEST(SpecErrors, UnknownOpSuggestsNearestOp) {
  EXPECT_THROW_WITH(parse_expr("flaten(a)"), "spec.yaml:7:9: unknown op or model 'flaten'");
  EXPECT_THROW_WITH(parse_expr("flaten(a)"), "did you mean 'flatten'?");
  EXPECT_THROW_WITH(parse_expr("heda(a)"), "did you mean the model 'head'?");
}

TEST(SpecErrors, OpArgumentErrorsCarryThePosition) {
  EXPECT_THROW_WITH(parse_expr("linear(a)"), "spec.yaml:7:9: linear: missing argument 'out'");
  EXPECT_THROW_WITH(parse_expr("relu(a, dim=1)"), "unknown argument 'dim'");
  EXPECT_THROW_WITH(parse_expr("mean(a, dim=b)"),
                    "argument 'dim' must be a constant, not a tensor");
}

TEST(SpecErrors, UnquotedStringSuggestsQuotes) {
  EXPECT_THROW_WITH(parse_expr("pool(a, kind=maximum)"), "fix: strings need quotes: \"maximum\"");
  // Not "did you mean 'a'": a keyword argument is never a tensor.
  EXPECT_THROW_WITH(parse_expr("pool(a, kind=avg)"), "strings need quotes: \"avg\"");
  EXPECT_THROW_WITH(parse_expr("adapt(a, like=haed)"), "did you mean 'head'?");
}

TEST(SpecErrors, OutputNamingNothingIsAnError) {
  std::string yaml = text(kLateFusion);
  yaml.replace(yaml.find("outputs: [logits]"), 17, "outputs: [logit]");
  EXPECT_THROW_WITH(parse_spec(yaml, "spec.yaml"), "spec.yaml:13:11: output 'logit' names nothing");
  EXPECT_THROW_WITH(parse_spec(yaml, "spec.yaml"), "did you mean 'logits'?");
}

// ---- Errors: expression syntax ---------------------------------------------------

TEST(SpecErrors, SyntaxErrorsSayWhatWasExpectedAndWhere) {
  EXPECT_THROW_WITH(parse_expr("flatten(a"),
                    "spec.yaml:7:18: expected ')' or ',' in the call of 'flatten' "
                    "(opened at column 16)");
  EXPECT_THROW_WITH(parse_expr("(a + b"), "expected ')' to close the '('");
  EXPECT_THROW_WITH(parse_expr("a +"), "expected a value, got the end");
  EXPECT_THROW_WITH(parse_expr("a b"), "unexpected 'b' after the expression");
  EXPECT_THROW_WITH(parse_expr("a / 2"), "unexpected character '/'");
  EXPECT_THROW_WITH(parse_expr("pool(a, \"avg)"), "has no closing \"");
  EXPECT_THROW_WITH(parse_expr("a[0"), "expected ']' to close the index");
  EXPECT_THROW_WITH(parse_expr("a[b]"), "expected an integer or a quoted string");
  EXPECT_THROW_WITH(parse_expr("a."), "expected an attribute name after '.'");
  EXPECT_THROW_WITH(parse_expr("reshape(a, [1, 2)"), "expected ']' or ','");
  EXPECT_THROW_WITH(parse_expr("3"), "'y' must compute a tensor, not the constant 3");
  EXPECT_THROW_WITH(parse_expr("\"s\" + a"), "'+' needs tensors or numbers");
  EXPECT_THROW_WITH(parse_expr("mean(dim=1, a)"), "positional argument after keyword");
  EXPECT_THROW_WITH(parse_expr("relu(a) 2x"), "'2x' is not a number or a name");
  EXPECT_THROW_WITH(parse_expr("linear(a, 99999999999999999999)"), "does not fit in 64 bits");
}

TEST(SpecErrors, GraphEntryMustBeAnAssignment) {
  EXPECT_THROW_WITH(parse_expr("relu(a)\n  - relu(a)"), "spec.yaml:8:9: expected '=' after 'relu'");
  EXPECT_THROW_WITH(parse_expr("relu(a)\n  - = relu(a)"), "expected a name to assign");
  EXPECT_THROW_WITH(parse_expr("relu(a)\n  - z ="), "expected an expression after 'z ='");
  EXPECT_THROW_WITH(parse_expr("relu(a)\n  - z: relu(a)"),
                    "write '- z = ...' rather than '- z: ...'");
  EXPECT_THROW_WITH(parse_expr("relu(a)\n  - [z]"), "must be 'name = expression'");
}

TEST(SpecErrors, DeepNestingIsAnErrorNotACrash) {
  const int deep = 100000;
  EXPECT_THROW_WITH(parse_expr(std::string(deep, '(') + "a" + std::string(deep, ')')),
                    "nested too deeply");
  std::string calls;
  for (int k = 0; k < 5000; ++k) calls += "relu(";
  calls += "a" + std::string(5000, ')');
  EXPECT_THROW_WITH(parse_expr(calls), "nested too deeply");
  EXPECT_THROW_WITH(parse_expr("reshape(a, " + std::string(deep, '[') + ")"), "nested too deeply");
  EXPECT_THROW_WITH(parse_expr(std::string(deep, '-') + "a"), "nested too deeply");
  // yaml-cpp has its own depth limit; its error is a SpecError too.
  EXPECT_THROW_WITH(parse_spec("inputs: " + std::string(deep, '['), "spec.yaml"), "spec.yaml:");
  // Nesting within the limit is fine.
  Spec s = parse_expr(std::string(150, '(') + "a" + std::string(150, ')'));
  EXPECT_EQ(s.graph.node(s.graph.outputs()[0].second).name, "a");
}

TEST(SpecErrors, LongLinesParseInLinearTime) {
  const auto start = std::chrono::steady_clock::now();
  std::string sum = "a";
  for (int k = 0; k < 20000; ++k) sum += " + b";
  Spec s = parse_expr(sum);
  EXPECT_EQ(s.graph.nodes().size(), 20002u);
  std::string list = "reshape(a, [";
  for (int k = 0; k < 200000; ++k) list += "1, ";
  Spec t = parse_expr(list + "8])");
  EXPECT_EQ(named(t.graph, "y").kwarg("shape")->items.size(), 200001u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// ---- Errors: YAML structure ----------------------------------------------------

TEST(SpecErrors, YamlSyntaxErrorsHaveLineAndColumn) {
  EXPECT_THROW(parse("inputs: [a, b\ngraph: x"), SpecError);
  EXPECT_THROW_WITH(parse("inputs: {x: [N, 4]}\ngraph:\n  - y = relu(x)\n bad: [\n"),
                    "spec.yaml:4:");
  EXPECT_THROW_WITH(parse("inputs: [a, b\n"), "invalid YAML");
}

TEST(SpecErrors, UnknownKeysSuggestTheNearestKnownKey) {
  std::string yaml = text(kLateFusion);
  std::string top = yaml;
  top.replace(top.find("outputs:"), 8, "ouputs:");
  EXPECT_THROW_WITH(parse_spec(top, "spec.yaml"),
                    "spec.yaml:13:1: unknown key 'ouputs' in the spec");
  EXPECT_THROW_WITH(parse_spec(top, "spec.yaml"), "did you mean 'outputs'?");
  std::string model = yaml;
  model.replace(model.find("freeze: true}   #"), 6, "frezee");
  EXPECT_THROW_WITH(parse_spec(model, "spec.yaml"), "unknown key 'frezee' in models.vision");
  EXPECT_THROW_WITH(parse_spec(model, "spec.yaml"), "did you mean 'freeze'?");
  std::string input = yaml;
  input.replace(input.find("dtype"), 5, "dtpye");
  EXPECT_THROW_WITH(parse_spec(input, "spec.yaml"), "unknown key 'dtpye' in inputs.tokens");
  std::string far = yaml;
  far.replace(far.find("outputs:"), 8, "zzzzzzzzzz:");
  EXPECT_THROW_WITH(parse_spec(far, "spec.yaml"), "known keys: inputs, models, graph");
}

TEST(SpecErrors, KeysGivenTwiceAreErrors) {
  EXPECT_THROW_WITH(parse(R"Y(
inputs:
  x: [N, 4]
  x: [N, 5]
graph: ["y = relu(x)"]
outputs: [y]
)Y"),
                    "spec.yaml:3:3: 'x' appears twice in inputs (first at line 2)");
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
models:
  m: {file: a.pt, file: b.pt}
graph: ["y = m(x)"]
outputs: [y]
)Y"),
                    "'file' appears twice in models.m");
}

TEST(SpecErrors, ModelWithoutFileIsAnError) {
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
models:
  enc: {cut: layer3}
graph: ["y = enc(x)"]
outputs: [y]
)Y"),
                    "spec.yaml:3:3: model 'enc' has no 'file:'");
  EXPECT_THROW_WITH(parse(R"Y(
inputs: {x: [N, 4]}
models:
  enc:
graph: ["y = enc(x)"]
outputs: [y]
)Y"),
                    "models.enc must be a map like {file: resnet18.pt}");
}

TEST(SpecErrors, MissingOrEmptySectionsAreErrors) {
  EXPECT_THROW_WITH(parse(""), "the spec is empty");
  EXPECT_THROW_WITH(parse("- a\n- b\n"), "the spec must be a map");
  EXPECT_THROW_WITH(parse("inputs: {x: [N, 4]}\noutputs: [x]\n"),
                    "the spec has no 'graph:' section");
  EXPECT_THROW_WITH(parse("inputs: {x: [N, 4]}\ngraph: []\noutputs: [x]\n"),
                    "spec.yaml:2:8: the graph is empty");
  EXPECT_THROW_WITH(parse("inputs: {x: [N, 4]}\ngraph:\noutputs: [x]\n"), "graph must be a list");
  EXPECT_THROW_WITH(parse("inputs: {x: [N, 4]}\ngraph: [\"y = relu(x)\"]\noutputs: []\n"),
                    "outputs must list the names");
  EXPECT_THROW_WITH(parse("graph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "the spec has no 'inputs:' section");
}

TEST(SpecErrors, WrongNodeTypesAreErrors) {
  EXPECT_THROW_WITH(parse("inputs: [x]\ngraph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "spec.yaml:1:9: inputs must map each input's name to its shape");
  EXPECT_THROW_WITH(parse("inputs: {x: 4}\ngraph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "the shape of input 'x' must be a list");
  EXPECT_THROW_WITH(
      parse("inputs: {x: [N, 2.5]}\ngraph: [\"y = relu(x)\"]\noutputs: [y]\n"),
      "spec.yaml:1:17: a dimension of input 'x' must be an integer or a name like N, got '2.5'");
  EXPECT_THROW_WITH(parse("inputs: {x: [N, 0]}\ngraph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "dimension 0 must be positive");
  EXPECT_THROW_WITH(parse("inputs: {x: {shape: [N], dtype: flaot}}\ngraph: [\"y = relu(x)\"]\n"
                          "outputs: [y]\n"),
                    "unknown dtype 'flaot'\n  fix: did you mean 'float'?");
  EXPECT_THROW_WITH(parse("inputs: {x: {dtype: int64}}\ngraph: [\"y = relu(x)\"]\n"
                          "outputs: [y]\n"),
                    "inputs.x has no 'shape:'");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\nmodels: [a.pt]\ngraph: [\"y = relu(x)\"]\n"
                          "outputs: [y]\n"),
                    "models must map each model's name");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\nmodels: {m: {file: [a.pt]}}\n"
                          "graph: [\"y = m(x)\"]\noutputs: [y]\n"),
                    "models.m.file must be a string, got a list");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\nmodels: {m: {file: a.pt, freeze: {a: 1}}}\n"
                          "graph: [\"y = m(x)\"]\noutputs: [y]\n"),
                    "models.m.freeze must be true, false or a list");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\ngraph: {y: relu(x)}\noutputs: [y]\n"),
                    "graph must be a list");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\ngraph: [\"y = relu(x)\"]\noutputs: [y]\n"
                          "seed: -1\n"),
                    "seed must be a non-negative integer");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\ngraph: [\"y = relu(x)\"]\noutputs: [[y]]\n"),
                    "an output must be a string, got a list");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\nmodels: {x: {file: a.pt}}\n"
                          "graph: [\"y = x(x)\"]\noutputs: [y]\n"),
                    "model 'x' has the same name as an input");
  EXPECT_THROW_WITH(parse("inputs: {x: [N]}\nmodels: {relu: {file: a.pt}}\n"
                          "graph: [\"y = relu(x)\"]\noutputs: [y]\n"),
                    "spec.yaml:2:10: model name 'relu' is also a built-in op");
  // The combined module's own attributes, and Python's private names.
  for (const char* name : {"training", "forward", "stitch_spec", "stitch_manifest", "_modules"}) {
    const std::string n = name;
    const std::string spec = "inputs: {x: [N]}\nmodels: {" + n + ": {file: a.pt}}\n" +
                             "graph: [\"y = " + n + "(x)\"]\noutputs: [y]\n";
    EXPECT_THROW_WITH(parse(spec.c_str()), "spec.yaml:2:10: model name '" + n + "' is reserved");
  }
}

TEST(SpecErrors, AModelNamedAfterItsFileGetsANameASpecCouldGiveIt) {
  EXPECT_EQ(load("nets/resnet.v2.pt").spec().name, "resnet_v2");
  EXPECT_EQ(load("1st.pt").spec().name, "m_1st");
  EXPECT_EQ(load("for.pt").spec().name, "m_for");
  EXPECT_EQ(load("training.pt").spec().name, "m_training");
  EXPECT_EQ(load("_private.pt").spec().name, "m_private");
}

TEST(SpecErrors, ErrorsAreSpecErrors) {
  EXPECT_THROW(parse_expr("relu(nothing)"), SpecError);
  EXPECT_THROW(parse("inputs: [x"), SpecError);
  EXPECT_THROW(parse("inputs: {x: [N]}\ngraph: [\"y = relu(x)\"]\noutputs: [z]\n"), SpecError);
}

}  // namespace
}  // namespace stitch
