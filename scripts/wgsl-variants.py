#!/usr/bin/env python3
"""Make a reference kernel's WGSL artifacts from its one WGSL source.

kernels/<k>/src/<k>.wgsl is written once, over `elem`, the element type of
the op's tensors. Each WGSL artifact in kernels/<k>/kernel.toml says which
variant it is: the dtype of its entries (f32 or f16) and its features
("shader-f16" exactly when the dtype is f16, and "subgroups" or not). For
each one this script writes the artifact's `path`:

  - `enable f16;` first, for f16 (WGSL wants enables before anything else);
  - a comment naming the source and this script;
  - `alias elem = <dtype>;`
  - the source, keeping the lines between `//#if subgroups` (or
    `//#if !subgroups`), `//#else` and `//#endif` that apply to this
    variant; the directive lines themselves are dropped, and so is a blank
    line that would follow another.

    python3 scripts/wgsl-variants.py activation          # from the repo root
    python3 scripts/wgsl-variants.py activation OUTROOT  # writes OUTROOT/<path>

It prints the path of each file it writes, relative to the kernel's directory.

Then refresh size and sha256 in kernel.toml (`kernelhub manifest update`).
`scripts/build-kernels.sh` runs this for every kernel, and its `--check`
fails when a committed WGSL file is not what its source gives.
"""
import os
import re
import sys
import tomllib

CONDITIONS = {"subgroups", "!subgroups"}
# A comment that would be a directive but for spaces (`// #if subgroups`).
NEAR_DIRECTIVE = re.compile(r"//\s*#\s*(if|else|endif)\b")


def fail(message):
    sys.exit(f"error: {message}")


def variant(manifest, index, artifact):
    """The (dtype, subgroups) an artifact asks for, checked against its features."""
    where = f"{manifest}: artifacts[{index}] (`{artifact.get('path', '?')}`)"
    dtypes = {entry.get("dtype") for entry in artifact.get("entries", [])}
    if len(dtypes) != 1 or not dtypes <= {"f32", "f16"}:
        fail(f"{where}: its entries must share one dtype, f32 or f16 (found {sorted(map(str, dtypes))})")
    dtype = dtypes.pop()
    features = set(artifact.get("features", []))
    unknown = features - {"shader-f16", "subgroups"}
    if unknown:
        fail(f"{where}: features {sorted(unknown)} are not made by this script")
    if ("shader-f16" in features) != (dtype == "f16"):
        fail(f"{where}: an f16 artifact needs the `shader-f16` feature and an f32 one must not have it")
    return dtype, "subgroups" in features


def select_lines(source, text, subgroups):
    """The source's lines for this variant, with the directive lines dropped."""
    kept = []
    stack = []  # per open //#if: [this branch kept, an //#else seen, its line]
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        directive = line.strip()
        where = f"{source}:{number}"
        if not directive.startswith("//#"):
            if NEAR_DIRECTIVE.match(directive):
                fail(f"{where}: `{directive}` looks like a directive; write it with no spaces, "
                     "as `//#if subgroups`, `//#if !subgroups`, `//#else` or `//#endif`")
            if all(branch[0] for branch in stack):
                # A part left out between two blank lines leaves one, not two.
                if not (directive == "" and kept and kept[-1].strip() == ""):
                    kept.append(line)
            continue
        word, _, condition = directive[3:].partition(" ")
        if word == "if" and condition in CONDITIONS:
            stack.append([subgroups == (condition == "subgroups"), False, number])
        elif word == "if":
            fail(f"{where}: `{directive}`: the condition must be `subgroups` or `!subgroups`")
        elif word in ("else", "endif") and condition:
            fail(f"{where}: `{directive}`: `//#{word}` takes nothing after it")
        elif word in ("else", "endif") and not stack:
            fail(f"{where}: `//#{word}` with no open `//#if`")
        elif word == "else" and stack[-1][1]:
            fail(f"{where}: a second `//#else` for the `//#if` at line {stack[-1][2]}")
        elif word == "else":
            stack[-1] = [not stack[-1][0], True, stack[-1][2]]
        elif word == "endif":
            stack.pop()
        else:
            fail(f"{where}: `{directive}` is not a directive: use `//#if subgroups`, "
                 "`//#if !subgroups`, `//#else` or `//#endif`")
    if stack:
        fail(f"{source}:{stack[-1][2]}: this `//#if` has no `//#endif`")
    return "".join(kept)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: wgsl-variants.py KERNEL [OUTROOT]")
    kernel = sys.argv[1]
    kernel_dir = os.path.join("kernels", kernel)
    out_root = sys.argv[2] if len(sys.argv) == 3 else kernel_dir
    manifest = os.path.join(kernel_dir, "kernel.toml")
    source = os.path.join(kernel_dir, "src", f"{kernel}.wgsl")
    try:
        with open(manifest, "rb") as f:
            artifacts = tomllib.load(f).get("artifacts", [])
        with open(source) as f:
            text = f.read()
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(e)
    # Every file is made before any is written, so an error leaves nothing behind.
    made = {}
    for index, artifact in enumerate(artifacts):
        if artifact.get("format") != "wgsl":
            continue
        dtype, subgroups = variant(manifest, index, artifact)
        path = artifact["path"]
        name = os.path.basename(path)
        head = "enable f16;\n\n" if dtype == "f16" else ""
        head += (f"// {name}: the {dtype}{', subgroups' if subgroups else ''} variant of src/{kernel}.wgsl,\n"
                 "// made by scripts/wgsl-variants.py; edit the source, not this file.\n"
                 f"alias elem = {dtype};\n\n")
        made[path] = head + select_lines(source, text, subgroups)
    if not made:
        fail(f"{manifest} has no WGSL artifact")
    for path, content in made.items():
        target = os.path.join(out_root, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".tmp", "w") as f:
            f.write(content)
        os.replace(target + ".tmp", target)
        print(path)


if __name__ == "__main__":
    main()
