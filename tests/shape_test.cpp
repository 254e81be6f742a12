// The algebra of symbolic dims: what check relies on to keep N symbolic
// through flatten, reshape and concat.

#include <stitch/shape.h>

#include <limits>

#include "test_util.h"

namespace stitch {
namespace {

const Dim T = Dim::symbol("T");

TEST(DimAlgebra, ProductsMultiplyCoefficientsAndKeepSymbolsSorted) {
  const Dim a = T * N * Dim(3);
  EXPECT_EQ(a.str(), "3*N*T");
  EXPECT_EQ(a, Dim(3) * N * T);  // the order of factors does not matter
  EXPECT_EQ(a.coefficient(), 3);
  EXPECT_EQ(a.symbols(), (std::vector<std::string>{"N", "T"}));
  EXPECT_EQ((N * N).str(), "N*N");
  EXPECT_FALSE(a.is_static());
  EXPECT_TRUE((Dim(4) * Dim(5)).is_static());
  EXPECT_EQ((Dim(4) * Dim(5)).size(), 20);
}

TEST(DimAlgebra, ZeroTimesASymbolIsZero) {
  EXPECT_EQ(Dim(0) * N, Dim(0));
  EXPECT_TRUE((N * Dim(0)).is_static());
}

TEST(DimAlgebra, DivisionIsExactOrNothing) {
  EXPECT_EQ((N * T * Dim(6)).divide(N * Dim(2)), T * Dim(3));
  EXPECT_EQ((N * Dim(12)).divide(Dim(12)), N);
  EXPECT_EQ(Dim(7).divide(Dim(2)), std::nullopt);
  EXPECT_EQ(N.divide(T), std::nullopt);  // T is not a factor
  EXPECT_EQ((N * N).divide(N), N);       // one N of two
  EXPECT_EQ(Dim(8).divide(Dim(0)), std::nullopt);
  EXPECT_EQ(Dim(8).divide(N), std::nullopt);  // a static size over a dynamic one
}

TEST(DimAlgebra, SumsNeedTheSameSymbols) {
  EXPECT_EQ(Dim(3).plus(Dim(4)), Dim(7));
  EXPECT_EQ(N.plus(N), Dim(2) * N);
  EXPECT_EQ((Dim(2) * N).plus(Dim(3) * N), Dim(5) * N);
  EXPECT_EQ(N.plus(T), std::nullopt);
  EXPECT_EQ(N.plus(Dim(1)), std::nullopt);  // N + 1 has no form
}

TEST(DimAlgebra, EvaluateGivesEachSymbolItsValue) {
  EXPECT_EQ((Dim(2) * N * T).evaluate({{"N", 3}, {"T", 5}}), 30);
  EXPECT_EQ(Dim(7).evaluate({}), 7);
  EXPECT_EQ((N * N).evaluate({{"N", 4}}), 16);
}

TEST(DimAlgebra, ParseReadsWhatStrWrites) {
  for (const Dim& d : {Dim(224), N, Dim(2) * N, N * T, Dim(12) * N * T, Dim(0)}) {
    EXPECT_EQ(Dim::parse(d.str()), d) << d.str();
  }
  EXPECT_EQ(Dim::parse(" 3 * N "), Dim(3) * N);
  for (const char* bad : {"", "N*", "*N", "2x", "N+1", "3.5", "1234567890123456789", "-2*N"}) {
    EXPECT_EQ(Dim::parse(bad), std::nullopt) << bad;
  }
  // A lone negative number reads, so that the spec reader can say "must be
  // positive" rather than "not a dimension".
  EXPECT_EQ(Dim::parse("-1"), Dim(-1));
}

TEST(DimAlgebra, OverflowIsAShapeErrorNotAWrappedSize) {
  const int64_t big = std::numeric_limits<int64_t>::max() / 2 + 1;
  EXPECT_THROW_TYPE_WITH(Dim(big) * Dim(2), ShapeError, "too large");
  EXPECT_THROW_TYPE_WITH(Dim(big).plus(Dim(big)), ShapeError, "too large");
  EXPECT_THROW_TYPE_WITH(Dim::parse("3037000500*3037000500"), ShapeError, "too large");
  EXPECT_THROW_TYPE_WITH((Dim(big) * N).evaluate({{"N", 2}}), ShapeError, "too large");
}

TEST(DimAlgebra, NumelOfAShapeIsTheProductOfItsDims) {
  EXPECT_EQ(numel({N, Dim(3), Dim(4)}), Dim(12) * N);
  EXPECT_EQ(numel({}), Dim(1));
  EXPECT_EQ(shape_str({N, Dim(3), T}), "[N, 3, T]");
}

}  // namespace
}  // namespace stitch
