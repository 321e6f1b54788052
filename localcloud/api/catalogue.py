"""The fixed catalogue, read-only: ``/v1/locations``, ``/v1/datacenters``, ``/v1/server_types`` (the types of the
architectures this host runs, ``engine/architectures``)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..engine import catalog
from .listing import BY_NAME, find, listing

SORT = ("id", "name")

router = APIRouter()


@router.get("/v1/locations")
def list_locations(request: Request):
    return listing(request, "locations", catalog.LOCATIONS, sort_fields=SORT, filters=BY_NAME)


@router.get("/v1/locations/{ident}")
def get_location(ident: int):
    return {"location": find(catalog.LOCATIONS, ident, "location")}


def types(request: Request) -> list[dict]:
    return request.app.state.cloud.architectures.server_types()


@router.get("/v1/datacenters")
def list_datacenters(request: Request):
    dcs = [catalog.datacenter_json(dc, types(request)) for dc in catalog.DATACENTERS]
    body = listing(request, "datacenters", dcs, sort_fields=SORT, filters=BY_NAME)
    body["recommendation"] = dcs[0]["id"]
    return body


@router.get("/v1/datacenters/{ident}")
def get_datacenter(request: Request, ident: int):
    return {"datacenter": catalog.datacenter_json(find(catalog.DATACENTERS, ident, "datacenter"), types(request))}


@router.get("/v1/server_types")
def list_server_types(request: Request):
    return listing(request, "server_types", types(request), sort_fields=SORT, filters=BY_NAME)


@router.get("/v1/server_types/{ident}")
def get_server_type(request: Request, ident: int):
    return {"server_type": find(types(request), ident, "server type")}

