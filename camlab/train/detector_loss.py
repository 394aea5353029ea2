"""CamDet training targets and loss: FCOS centre-sampled assignment, quality focal loss and GIoU box loss.

Tian et al., "FCOS", ICCV 2019 (per-level size ranges, centre sampling with radius 1.5 strides, smallest-area
tie-break); Li et al., "Generalized Focal Loss", NeurIPS 2020 (quality focal loss: the class target of a positive
cell is the IoU of its predicted box, so the score ranks boxes by localisation quality without a centerness
branch; ``quality_power`` < 1 raises that target to IoU**power, 0 giving the focal loss's plain 1.0 target of
Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017: the camera's presence decision is the highest score in
the frame, and with the plain IoU target a clearly recognised pet with a loose box scores no higher than a doubtful
one with a tight box); Gupta et al., "LVIS", CVPR 2019 (federated labels: a class's loss counts as a negative only in
images whose source labels that class exhaustively, ``targets[i]["labelled"]``, or on a labelled object of another
class) and its ``not_exhaustive`` flag: where a source boxes a class without boxing every instance,
``targets[i]["incomplete"]``, a cell off the boxes that the model already scores >= ``ignore_score`` for that class
may be an unboxed object and gets no background loss (Niitani et al., "Sampling Techniques for Large-Scale Object
Detection from Sparsely Annotated Objects", CVPR 2019: pseudo-label-guided sampling); Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019 (box loss). Boxes are xyxy in
network-input pixels; the box decode is the one of :mod:`camlab.contract.detection`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from camlab.contract.detection import LTRB_CLAMP

SIZE_RANGES = {8: (0.0, 64.0), 16: (64.0, 128.0), 32: (128.0, float("inf"))}
CENTER_RADIUS = 1.5


def grid_points(shapes: list[tuple[int, int]], strides: tuple[int, ...], device=None):
    """All cell centres (P, 2), their stride (P,) and level index (P,) in flattened level order."""
    pts, st, lv = [], [], []
    for li, ((h, w), s) in enumerate(zip(shapes, strides)):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                                torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
        pts.append(torch.stack([(xs.reshape(-1) + 0.5) * s, (ys.reshape(-1) + 0.5) * s], dim=1))
        st.append(torch.full((h * w,), float(s), device=device))
        lv.append(torch.full((h * w,), li, dtype=torch.long, device=device))
    return torch.cat(pts), torch.cat(st), torch.cat(lv)


@torch.no_grad()
def assign(points: torch.Tensor, strides: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """Index of the gt assigned to each point (-1 = background). ``gt_boxes``: (M, 4) xyxy input px."""
    P = points.shape[0]
    if gt_boxes.numel() == 0:
        return torch.full((P,), -1, dtype=torch.long, device=points.device)
    x, y = points[:, 0:1], points[:, 1:2]
    l, t = x - gt_boxes[None, :, 0], y - gt_boxes[None, :, 1]
    r, b = gt_boxes[None, :, 2] - x, gt_boxes[None, :, 3] - y
    ltrb = torch.stack([l, t, r, b], dim=2)                                  # (P, M, 4)
    inside = ltrb.min(dim=2).values > 0
    cx = (gt_boxes[:, 0] + gt_boxes[:, 2]) / 2
    cy = (gt_boxes[:, 1] + gt_boxes[:, 3]) / 2
    rad = strides[:, None] * CENTER_RADIUS
    in_center = ((x - cx[None]).abs() < rad) & ((y - cy[None]).abs() < rad)
    # a box smaller than a cell still gets the cell holding its centre
    center_cell = ((x - cx[None]).abs() <= strides[:, None] / 2) & ((y - cy[None]).abs() <= strides[:, None] / 2)
    lo = torch.tensor([SIZE_RANGES[int(s)][0] for s in strides.tolist()], device=points.device)[:, None]
    hi = torch.tensor([SIZE_RANGES[int(s)][1] for s in strides.tolist()], device=points.device)[:, None]
    gsize = torch.maximum(gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1])[None]
    # level by the box's size (FCOS uses max regression distance; half the box size is the same thing at the centre)
    in_level = (gsize / 2 >= lo) & (gsize / 2 < hi)
    in_level |= (strides[:, None] == 8) & (gsize / 2 < lo.min())            # tiny boxes: finest level
    cand = in_center & (inside | center_cell) & in_level
    area = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]))[None].expand(P, -1)
    area = torch.where(cand, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(dim=1)
    best[torch.isinf(best_area)] = -1
    return best


def decode_boxes(raw_ltrb: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(P, 4) raw log-distances -> (P, 4) xyxy input px (the same formula as the contract's numpy decode)."""
    d = torch.exp(raw_ltrb.clamp(*LTRB_CLAMP)) * strides[:, None]
    return torch.cat([points - d[:, :2], points + d[:, 2:]], dim=1)


def box_iou_aligned(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and GIoU of aligned xyxy pairs (N, 4)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    enc = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(dim=1) + 1e-7
    return iou, iou - (enc - union) / enc


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, beta: float = 2.0,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """QFL, summed: BCE(logits, soft target) * |sigmoid(logits) - target|^beta (times ``weight`` when given)."""
    p = logits.sigmoid()
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * (p - target).abs().pow(beta)
    return (loss * weight).sum() if weight is not None else loss.sum()


def flatten_outputs(outputs: tuple[torch.Tensor, ...]):
    """Model outputs -> (box (B, P, 4), cls (B, P, C), level shapes)."""
    boxes, clss, shapes = [], [], []
    for i in range(0, len(outputs), 2):
        b, c = outputs[i], outputs[i + 1]
        shapes.append(tuple(b.shape[2:]))
        boxes.append(b.flatten(2).transpose(1, 2))
        clss.append(c.flatten(2).transpose(1, 2))
    return torch.cat(boxes, 1), torch.cat(clss, 1), shapes


def detection_loss(outputs: tuple[torch.Tensor, ...], targets: list[dict], strides: tuple[int, ...],
                   box_weight: float = 2.0, ignore_score: float = 0.4, quality_power: float = 1.0
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts for a batch; ``targets[i]``: {"boxes": (M, 4) input px, "labels": (M,), and
    optionally "labelled": (C,) bool, "incomplete": (C,) bool}. A class the image's source does not label
    contributes no negative loss there, except on the cells of a labelled box of another class (an object has one
    class). A class it labels but not exhaustively ("incomplete") contributes no negative loss on the cells the
    model scores >= ``ignore_score`` for it (possibly an unboxed object); its other cells stay negatives.
    A positive cell's class target is IoU**``quality_power`` (1: quality focal loss; 0: the plain 1.0 target)."""
    if not 0.0 <= quality_power <= 1.0:
        raise ValueError(f"quality_power must be in [0, 1] (1 = IoU target, 0 = 1.0 target), got {quality_power}")
    box_raw, cls_raw, shapes = flatten_outputs(outputs)
    B, P, C = cls_raw.shape
    points, st, _ = grid_points(shapes, strides, device=cls_raw.device)
    cls_target = torch.zeros_like(cls_raw)
    pos_pred = []
    num_pos = 0
    for i, tgt in enumerate(targets):
        gtb = tgt["boxes"].to(cls_raw.dtype)
        gtl = tgt["labels"].long()
        match = assign(points, st, gtb)
        pos = torch.nonzero(match >= 0).squeeze(1)
        if pos.numel() == 0:
            continue
        num_pos += pos.numel()
        pred = decode_boxes(box_raw[i, pos], points[pos], st[pos])
        gt = gtb[match[pos]]
        iou, giou = box_iou_aligned(pred, gt)
        cls_target[i, pos, gtl[match[pos]]] = iou.detach().clamp(min=0.01) ** quality_power
        pos_pred.append(giou)
    norm = max(num_pos, 1)
    known = torch.ones(B, 1, C, dtype=cls_raw.dtype, device=cls_raw.device)
    for i, tgt in enumerate(targets):
        if "labelled" in tgt:
            known[i, 0] = torch.as_tensor(tgt["labelled"], dtype=cls_raw.dtype, device=cls_raw.device)
    # a cell assigned to a labelled box is known for every class: the box's class is its positive and an object
    # has one class, so the others are negatives there even when its source does not label them
    on_object = (cls_target > 0).any(dim=2, keepdim=True).to(cls_raw.dtype)
    weight = torch.maximum(known.expand(B, P, C), on_object.expand(B, P, C))
    incomplete = torch.zeros(B, 1, C, dtype=torch.bool, device=cls_raw.device)
    for i, tgt in enumerate(targets):
        if "incomplete" in tgt:
            incomplete[i, 0] = torch.as_tensor(tgt["incomplete"], dtype=torch.bool, device=cls_raw.device)
    if bool(incomplete.any()):
        maybe_object = incomplete & (cls_raw.detach().sigmoid() >= ignore_score) & (cls_target <= 0)
        weight = weight * (~maybe_object).to(weight.dtype)
    loss_cls = quality_focal_loss(cls_raw, cls_target, weight=weight) / norm
    if pos_pred:
        giou = torch.cat(pos_pred)
        loss_box = (1.0 - giou).mean()
    else:
        loss_box = box_raw.sum() * 0.0
    total = loss_cls + box_weight * loss_box
    return total, {"loss": float(total.detach()), "loss_cls": float(loss_cls.detach()),
                   "loss_box": float(loss_box.detach()), "num_pos": float(num_pos) / max(B, 1)}
