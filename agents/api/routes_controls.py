"""Controls (operator token): each one is a bus message built and published by
``agents.ops.controls`` (the same module as the CLI and MCP) and applied by the agents, which
record it with who asked and why in the ledger's ``controls`` table. The API never writes the
ledger; it answers 202 with the control's message id once the broker confirmed the publish."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from agents.api import models as m
from agents.api.app import SOURCE
from agents.api.auth import operator_role, read_role
from agents.api.routes_system import bounded, services_of
from agents.ops.controls import ControlInvalid, ControlKind, ControlMessage, build_control
from infra.db.controls import read_controls
from infra.logging import get_logger
from infra.tokens import Role
from protocol.messages.control import control_kind, requested_by

router = APIRouter(prefix="/controls", tags=["controls"])
Operator = Annotated[Role, Depends(operator_role)]
Id = Annotated[str, Path(min_length=1, max_length=100)]
_ACCEPTED = {202: {"description": "published and confirmed by the broker; the agents apply it"}}

log = get_logger(component="api.controls")


async def _send(request: Request, role: Role, kind: ControlKind, body: m.ControlBody, **target: str | None) -> m.ControlAccepted:
    who = (body.requested_by or role.value).strip()
    try:
        message: ControlMessage = build_control(kind, reason=body.reason.strip(), requested_by=who, source=SOURCE, **target)
    except ControlInvalid as exc:
        raise HTTPException(422, str(exc)) from None
    routing_key = await services_of(request).publish(message)
    log.info("control published", control=control_kind(message).value, message_id=str(message.message_id),
             requested_by=requested_by(message), reason=message.reason, routing_key=routing_key, **target)
    return m.ControlAccepted(message_id=str(message.message_id), control=control_kind(message).value,
                             routing_key=routing_key, requested_by=who, reason=message.reason,
                             published_at=datetime.now(UTC))


@router.post("/emergency-stop", status_code=202, response_model=m.ControlAccepted, responses=_ACCEPTED,
             summary="Engage (active=true) or release the emergency stop")
async def emergency_stop(request: Request, role: Operator, body: m.EmergencyStopBody) -> m.ControlAccepted:
    kind = ControlKind.ENGAGE_STOP if body.active else ControlKind.RELEASE_STOP
    return await _send(request, role, kind, body)


@router.post("/orders/{client_order_id}/cancel", status_code=202, response_model=m.ControlAccepted,
             responses=_ACCEPTED, summary="Cancel an open order")
async def cancel_order(request: Request, role: Operator, client_order_id: Id, body: m.ControlBody) -> m.ControlAccepted:
    return await _send(request, role, ControlKind.CANCEL_ORDER, body, client_order_id=client_order_id)


@router.post("/strategies/{strategy_id}/pause", status_code=202, response_model=m.ControlAccepted,
             responses=_ACCEPTED, summary="Pause one strategy instance's BUYs (its exits still pass)")
async def pause_strategy(request: Request, role: Operator, strategy_id: Id, body: m.ControlBody) -> m.ControlAccepted:
    return await _send(request, role, ControlKind.PAUSE_STRATEGY, body, strategy_id=strategy_id)


@router.post("/strategies/{strategy_id}/resume", status_code=202, response_model=m.ControlAccepted,
             responses=_ACCEPTED, summary="Resume a paused strategy instance")
async def resume_strategy(request: Request, role: Operator, strategy_id: Id, body: m.ControlBody) -> m.ControlAccepted:
    return await _send(request, role, ControlKind.RESUME_STRATEGY, body, strategy_id=strategy_id)


@router.post("/positions/close", status_code=202, response_model=m.ControlAccepted, responses=_ACCEPTED,
             summary="Close a strategy's position (a SELL decided by the risk manager)")
async def close_position(request: Request, role: Operator, body: m.ClosePositionBody) -> m.ControlAccepted:
    return await _send(request, role, ControlKind.CLOSE_POSITION, body,
                       strategy_id=body.strategy_id, symbol=body.symbol, exchange=body.exchange)


@router.get("", response_model=m.Controls, dependencies=[Depends(read_role)],
            summary="Recorded controls and their outcomes (one row per applying agent), newest first")
async def controls(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    message_id: Annotated[uuid.UUID | None, Query(description="every row of one control")] = None,
) -> m.Controls:
    rows = await bounded(read_controls(services_of(request).sessions, limit=limit, message_id=message_id),
                         "Postgres (controls)")
    return m.Controls(controls=[
        m.ControlRecord(message_id=str(r.message_id), agent=r.agent, kind=r.kind.value, target=r.target,
                        requested_by=r.requested_by, reason=r.reason, source=r.source, requested_at=r.requested_at,
                        received_at=r.received_at, outcome=r.outcome.value, detail=r.detail,
                        client_order_id=r.client_order_id)
        for r in rows
    ])
