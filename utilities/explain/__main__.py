"""``python -m utilities.explain``: argument parsing, checks and exit codes (``--help`` explains all).

The work itself is :func:`utilities.explain.folder.explain_images`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..cam import CAMMethod
from ..methods import CAM_METHODS
from ..models import ModelUnavailableError, load_model
from ..plotting import CAM_COLORMAP, check_colormap
from ..widgets import noninteractive
from .folder import CSV_NAME, ExplainUsageError, check_output_folder, explain_images, find_images, shown

__all__ = ["EXIT_OK", "EXIT_SKIPPED", "EXIT_USAGE", "METHODS_BY_OPTION", "build_parser", "main"]

#: The run went to the end: every file found was explained or is listed as skipped, with the reason. Skipping a file
#: that is not an image is a normal outcome, so make and shell scripts must not read it as the tool failing.
EXIT_OK = 0
#: Nothing was explained (no files found, or every one skipped); with ``--strict``, also any file skipped.
EXIT_SKIPPED = 1
#: Bad arguments; nothing was written (argparse's own usage errors exit with 2 too).
EXIT_USAGE = 2

PROG = "python -m utilities.explain"


def _option_name(method_name: str) -> str:
    """``"Grad-CAM++"`` -> ``"gradcampp"``: the method's name as a shell-friendly option value."""
    return "".join(character for character in method_name.lower().replace("++", "pp") if character.isalnum())


#: --method values and the CAM method classes they pick.
METHODS_BY_OPTION: dict[str, type[CAMMethod]] = {_option_name(name): method for name, method in CAM_METHODS.items()}

DESCRIPTION = f"""\
Class activation maps for many images at once. For every image and class it
writes an overlay PNG (the map coloured over the image) into --out, and one
CSV, {CSV_NAME}, with a row per image and class. Each map is scaled by its
own minimum and maximum, so colours cannot be compared between PNGs; with
the default colormap, {CAM_COLORMAP}, the map's minimum is black and its maximum
pale yellow."""

EPILOG = f"""\
which files:
  A PATH that is a file is explained (whatever its name). A PATH that is a
  folder: every file directly inside it; hidden files (starting with '.') are
  ignored, and sub-folders are not searched but reported as skipped (pass one
  as a PATH of its own to explain it); the --out folder is passed over.
  Links are followed: a link to a file is explained as that file, a link to a
  folder is reported like a sub-folder, a link to nothing is reported. A file
  met twice (given twice, or a link and its target) is explained once and
  the second is reported. Files that are not images, cannot be read, are
  empty, damaged or too small are skipped with the reason; the run goes on
  and lists them at the end. No file found is left out of both the CSV and
  that list. Names that are not UTF-8 appear with \\x escapes in the CSV.

outputs in --out (created if missing):
  <image>_<class>.png  one per image and class, e.g. cat_egyptian_cat.png
                       for cat.jpg and "Egyptian cat" (_2, _3, ... added if
                       a name repeats)
  {CSV_NAME}     one row per image and class, with the columns
      file         the input file, as found
      class        the class name; class_index, its output index
      probability  the model's softmax probability of the class
      layer        the layer explained; method, the CAM method
      peak_row, peak_column
                   where the map is largest, in the image's own pixels
                   (row 0 is the top, column 0 the left)
      overlay      the PNG's file name
  --out must not be a folder that holds any input file, so no input can be
  overwritten; outputs of an earlier run with the same names are.

exit status:
  {EXIT_OK}  the run went to the end: every file was explained, or skipped with
     its reason in the list at the end (a file that is not an image is not
     an error)
  {EXIT_SKIPPED}  nothing was explained: no files found, or every one skipped;
     with --strict, also when any file or sub-folder was skipped
  {EXIT_USAGE}  usage error: bad arguments, a PATH that does not exist, an unknown
     class, model, layer or colormap, or an --out folder that holds input
     files; nothing was written

examples:
  {PROG} data --top-k 3 --out cams
  {PROG} data/cat_and_coffee.png --classes "Egyptian cat" espresso --method gradcampp --out cams
"""


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders of images (see 'which files' below)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs and the CSV; created if missing")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--classes", nargs="+", metavar="NAME",
        help='classes to explain in every image: names in any case ("Egyptian cat", quoted if they have spaces) or output indices',
    )
    which.add_argument(
        "--top-k", type=int, default=1, metavar="K",
        help="explain each image's K most probable classes instead (default: 1)",
    )
    parser.add_argument(
        "--model", metavar="NAME",
        help="a model name load_model accepts, e.g. resnet50 or efficientnet_lite0; "
        "default: as load_model() picks ($GRADCAM_MODEL, else ResNet50 if its weights are available, else EfficientNet-Lite0)",
    )
    parser.add_argument(
        "--layer", metavar="NAME", help="the layer to explain, by module name, e.g. layer4 or layer3 (default: the model's own default, layer4 for resnet50 and efficientnet_lite0)"
    )
    parser.add_argument(
        "--cmap", default=CAM_COLORMAP, metavar="NAME",
        help=f"matplotlib colormap of the overlays (default: {CAM_COLORMAP}, perceptually uniform; jet: the literature's colours)",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help=f"exit with status {EXIT_SKIPPED} when any file or sub-folder was skipped (default: only when nothing was explained)",
    )
    parser.add_argument(
        "--method", choices=list(METHODS_BY_OPTION), default="gradcam",
        help="CAM method (default: gradcam); scorecam runs one forward pass per channel of the layer and is slow",
    )
    return parser


def _class_target(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command.

    Args:
        argv: the arguments after the program name; ``None``: ``sys.argv[1:]``.

    Returns:
        The exit status: :data:`EXIT_OK`, :data:`EXIT_SKIPPED` or :data:`EXIT_USAGE`
        (``--help`` returns 0).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, and argparse's usage errors; returned so main() can be called from Python
        return int(exit_request.code or 0)

    def usage_error(message: str) -> int:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    if args.top_k < 1:
        return usage_error(f"--top-k must be at least 1, got {args.top_k}.")
    try:
        check_colormap(args.cmap)
    except ValueError as error:
        return usage_error(str(error))
    try:
        files, skipped = find_images(args.paths, ignore=args.out)
        out = check_output_folder(args.out, files)
    except ExplainUsageError as error:
        return usage_error(str(error))
    if not files:
        for entry in skipped:
            print(f"skipped {shown(entry.path)}: {shown(entry.reason)}", file=sys.stderr)
        print("No files to explain.", file=sys.stderr)
        return EXIT_SKIPPED
    # Model, classes and layer are checked before anything is written.
    try:
        model = load_model(args.model)
        classes = list(dict.fromkeys(model.class_index(_class_target(text)) for text in args.classes)) if args.classes else None
        if args.top_k > len(model.class_names):
            raise ValueError(f"--top-k {args.top_k} is more than the model's {len(model.class_names)} classes.")
        method_class = METHODS_BY_OPTION[args.method]
        method = method_class(model) if args.layer is None else method_class(model, args.layer)
    except (ValueError, ModelUnavailableError) as error:
        return usage_error(str(error))

    print(f"{method.name} at {method.layer_name} of {model.name}, {len(files)} file(s) -> {out}", file=sys.stderr)
    report = explain_images(
        model, method, files, out, classes=classes, top_k=args.top_k, progress=False if noninteractive() else None,
        cmap=args.cmap,
    )
    report.skipped[:0] = skipped
    # Every path counts once: explained, or skipped (a sub-folder too), so the two numbers add up to the total.
    print(
        f"Explained {len(report.explained_files)} of {len(files) + len(skipped)} path(s) given or found in the folders: "
        f"{len(report.rows)} overlay(s) and {CSV_NAME} in {out}."
        + (f" Skipped {len(report.skipped)}, listed below." if report.skipped else "")
    )
    if report.notes:
        print(f"Note on {len(report.notes)}:", file=sys.stderr)
        for entry in report.notes:
            print(f"  {shown(entry.path)}: {shown(entry.reason)}", file=sys.stderr)
    if report.skipped:
        print(f"Skipped {len(report.skipped)}:", file=sys.stderr)
        for entry in report.skipped:
            print(f"  {shown(entry.path)}: {shown(entry.reason)}", file=sys.stderr)
    if not report.explained_files or (report.skipped and args.strict):
        return EXIT_SKIPPED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
