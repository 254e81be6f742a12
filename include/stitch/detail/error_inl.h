#pragma once
#include <c10/util/Exception.h>

#include <new>
#include <string>
#include <string_view>

namespace stitch {
namespace detail {
/// The useful line of a c10::Error message (see first_line), without
/// LibTorch's C++ backtrace.
std::string short_message(const c10::Error& e);
/// The first non-empty line of a message; for an error raised inside a
/// running TorchScript model, the error itself (the last line).
std::string first_line(const std::string& message);
/// "1 input", "2 inputs": a count with its noun, for messages.
std::string count_of(int64_t count, const std::string& noun);
/// A message safe to print on a terminal, whatever bytes a file put in it:
/// control bytes (but newlines) and bytes that are not UTF-8 as \xNN, a tab
/// as a space, and each line cut at 2000 bytes and the whole at 20000, with
/// how much was left out.
std::string terminal_safe(std::string_view message);
}  // namespace detail

template <typename E, typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw E(context + ": " + detail::short_message(e));
  } catch (const std::bad_alloc&) {
    throw E(context + ": out of memory");
  } catch (const std::exception& e) {
    throw E(context + ": " + detail::first_line(e.what()));
  }
}
}  // namespace stitch
