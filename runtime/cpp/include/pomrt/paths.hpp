// Path safety for artifact directories (docs/design.md §6): every name an artifact lists must be a
// plain relative path that stays inside the directory after symlinks are resolved.
#pragma once

#include <filesystem>
#include <string>

namespace pomrt
{

//! `root / name` if `name` is relative, has no ".." component and resolves inside `root`.
//! `what` names the file that carried `name` (for the message). Throws Error(ARTIFACT).
std::filesystem::path safeMember(std::filesystem::path const& root, std::string const& name, std::string const& what);

//! Write `bytes` to `path` atomically: a temp file beside it, flushed and fsynced, then renamed.
void atomicWrite(std::filesystem::path const& path, std::string const& bytes);

} // namespace pomrt
