"""Class-name mapping of any YOLO/VOC label set onto the camera's three event classes: person, pet, vehicle.

The mapping is by name, case-insensitive, so any folder with a ``classes.txt`` can be used (COCO 2017 names,
Open Images names such as "Ambulance", Roboflow names such as "bike"). Names of other objects (e.g. COCO "chair")
are *known non-targets*: their boxes are dropped and the image stays in as a negative for the three classes.
Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014 (the category names).
"""
from __future__ import annotations

CLASSES: tuple[str, ...] = ("person", "pet", "vehicle")
PERSON, PET, VEHICLE = 0, 1, 2

#: lower-cased source names -> index into CLASSES
NAME_TO_CLASS: dict[str, int] = {
    "person": PERSON, "people": PERSON, "pedestrian": PERSON, "man": PERSON, "woman": PERSON, "human": PERSON,
    "cat": PET, "dog": PET, "pet": PET,
    "car": VEHICLE, "truck": VEHICLE, "bus": VEHICLE, "motorcycle": VEHICLE, "motorbike": VEHICLE,
    "bicycle": VEHICLE, "bike": VEHICLE, "ambulance": VEHICLE, "van": VEHICLE, "vehicle": VEHICLE,
}


def normalize_name(name: str) -> str:
    """'  Motor-Cycle ' -> 'motor cycle'; the canonical spelling used for lookups."""
    return " ".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


def map_class_name(name: str) -> int | None:
    """Index into :data:`CLASSES` for a source class name, or None for a non-target object (dropped box)."""
    key = normalize_name(name)
    if key in NAME_TO_CLASS:
        return NAME_TO_CLASS[key]
    key = key.replace(" ", "")
    return NAME_TO_CLASS.get(key)


def class_map_for(names: list[str]) -> dict[int, int | None]:
    """Source id -> target index (or None) for a ``classes.txt`` list."""
    return {i: map_class_name(n) for i, n in enumerate(names)}


#: COCO 2017 names that are not targets: boxes dropped silently (the image is a negative for the target classes)
KNOWN_NON_TARGETS: frozenset[str] = frozenset(normalize_name(n) for n in (
    "airplane", "train", "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush"))


def is_known_name(name: str) -> bool:
    """True for a target name or a known non-target (COCO) name; False for a name camlab cannot place."""
    return map_class_name(name) is not None or normalize_name(name) in KNOWN_NON_TARGETS
