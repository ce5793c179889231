// The map: the city pack's own layers (no tile server), units and incidents as live symbols.
/* global L */
import { t } from "./i18n.js";

const STATUS_COLOURS = {
  available: "#2ecc71", dispatched: "#f5a623", en_route: "#f7c948", on_scene: "#c084fc",
  returning: "#7dd3fc", out_of_service: "#6b7280",
};
const TYPE_LETTERS = {
  patrol_car: "C", motorcycle: "M", foot: "F", bicycle: "B", mounted: "H", special_police: "S",
};
const PRIORITY_COLOURS = { 1: "#ff3b3b", 2: "#ff8c1a", 3: "#f7c948", 4: "#7dd3fc", 5: "#a3a3a3" };

// The assigned unit's route: a colour no layer, status or priority uses.
const ROUTE_COLOUR = "#ff2bd6";

export { PRIORITY_COLOURS, ROUTE_COLOUR, STATUS_COLOURS, TYPE_LETTERS };

export class CityMap {
  constructor(element, config, layers, handlers) {
    this.handlers = handlers;
    this.incidentLifecycle = config.lifecycles.incident;
    this.map = L.map(element, {
      preferCanvas: true, zoomControl: true, attributionControl: true, zoomSnap: 0.25,
    });
    this.map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    for (const c of config.credits) this.map.attributionControl.addAttribution(c.replace("©", "&copy;"));
    // Units glide between AVL positions (CSS transition), but not while the map zooms, or they
    // would slide from their old screen place after every zoom.
    this.map.on("zoomstart", () => element.classList.add("no-glide"));
    this.map.on("zoomend", () => requestAnimationFrame(() => requestAnimationFrame(
      () => element.classList.remove("no-glide"))));
    const [w, s, e, n] = config.bbox;
    this.map.fitBounds([[s, w], [n, e]]);
    this.renderer = L.canvas({ padding: 0.3 });

    this.overlays = {};
    this.overlays.roads = L.geoJSON(layers.roads, {
      renderer: this.renderer, interactive: false,
      style: () => ({ color: "#51657a", weight: 1.1, opacity: 0.9 }),
    });
    this.zonesByLevel = {};
    const levelStyle = {
      city: { color: "#9fb3c8", weight: 2.5, fill: false },
      bureau: { color: "#e0a458", weight: 2, dashArray: "6 4", fill: false },
      station: { color: "#3fa7ff", weight: 1.4, fillOpacity: 0.04 },
      zone: { color: "#3fa7ff", weight: 0.6, opacity: 0.45, dashArray: "2 3", fill: false },
    };
    for (const level of ["zone", "station", "bureau", "city"]) {
      const features = layers.jurisdictions.features.filter((f) => f.properties.level === level);
      this.zonesByLevel[level] = L.geoJSON({ type: "FeatureCollection", features }, {
        renderer: this.renderer, interactive: level === "station",
        style: () => levelStyle[level],
        onEachFeature: (f, layer) => {
          if (level === "station") layer.bindTooltip(() => this.jurisdictionName(f.properties), { sticky: true });
        },
      });
    }
    this.overlays.stations = L.geoJSON(layers.stations, {
      pointToLayer: (f, latlng) => L.marker(latlng, {
        icon: L.divIcon({ className: "station-icon", html: "★", iconSize: [14, 14] }),
        keyboard: false,
      }).bindTooltip(() => this.stationName(f.properties)),
    });
    this.overlays.places = L.geoJSON(layers.places, {
      renderer: this.renderer,
      style: () => ({ color: "#a78bfa", weight: 1, fillOpacity: 0.15 }),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 4, color: "#a78bfa" }),
    });
    // Surveillance layers, filled by showSurveillance() and off until switched on.
    this.overlays.cameras = L.layerGroup();
    this.overlays.blindSpots = L.layerGroup();
    this.units = L.layerGroup();
    this.incidents = L.layerGroup();
    this.highlight = L.layerGroup();
    for (const layer of [this.overlays.roads, this.zonesByLevel.zone, this.zonesByLevel.station,
      this.zonesByLevel.bureau, this.zonesByLevel.city, this.overlays.stations, this.highlight,
      this.incidents, this.units]) layer.addTo(this.map);
    this.unitMarkers = new Map();
    this.incidentMarkers = new Map();
    this.layerControl = null;
    this.buildLayerControl();
  }

  jurisdictionName(p) {
    return (document.documentElement.lang.startsWith("zh") && p.name_zh) ? p.name_zh : p.name;
  }

  stationName(p) {
    const name = this.jurisdictionName(p);
    return p.synthetic ? `${name} (${t("map.synthetic")})` : name;
  }

  /** (Re)build the layer switcher with labels in the current language. */
  buildLayerControl() {
    if (this.layerControl) this.layerControl.remove();
    const overlays = {
      [t("layer.roads")]: this.overlays.roads,
      [t("layer.city")]: this.zonesByLevel.city,
      [t("layer.bureaus")]: this.zonesByLevel.bureau,
      [t("layer.stations_area")]: this.zonesByLevel.station,
      [t("layer.zones")]: this.zonesByLevel.zone,
      [t("layer.stations")]: this.overlays.stations,
      [t("layer.places")]: this.overlays.places,
      [t("layer.cameras")]: this.overlays.cameras,
      [t("layer.blind_spots")]: this.overlays.blindSpots,
      [t("layer.incidents")]: this.incidents,
      [t("layer.units")]: this.units,
    };
    // Top left, under the zoom buttons: the incident detail panel opens over the map's right.
    this.layerControl = L.control.layers(null, overlays, { collapsed: false, position: "topleft" });
    this.layerControl.addTo(this.map);
  }

  /** Cameras as dots in their status colour, and the blind spots of the hour as red lines. */
  showSurveillance(sensors, blindSpots) {
    this.overlays.cameras.clearLayers();
    this.overlays.blindSpots.clearLayers();
    L.geoJSON(sensors, {
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        renderer: this.renderer, radius: 4, weight: 1, color: "#111", fillOpacity: 0.9,
        fillColor: f.properties.colour,
      }).bindTooltip(() => `${f.properties.name || f.properties.id} · ${t(`camera.${f.properties.status}`)}`),
    }).addTo(this.overlays.cameras);
    L.geoJSON(blindSpots, {
      renderer: this.renderer, interactive: false,
      style: () => ({ color: "#d73027", weight: 2.5, opacity: 0.8 }),
    }).addTo(this.overlays.blindSpots);
  }

  /** Zoom to a jurisdiction (a station officer's scope). */
  focusJurisdiction(id) {
    for (const group of Object.values(this.zonesByLevel)) {
      group.eachLayer((layer) => {
        if (layer.feature.properties.id === id) this.map.fitBounds(layer.getBounds(), { padding: [20, 20] });
      });
    }
  }

  unitIcon(unit, recommended, offset = [0, 0]) {
    const colour = STATUS_COLOURS[unit.status] || "#999";
    const letter = TYPE_LETTERS[unit.unit_type] || "?";
    const shape = unit.mode === "foot" ? " foot" : "";
    return L.divIcon({
      className: "unit-marker",
      html: `<div class="unit-icon${shape}${recommended ? " recommended" : ""}" style="background:${colour};width:16px;height:16px" data-unit="${unit.id}">${letter}</div>`,
      iconSize: [16, 16], iconAnchor: [8 - offset[0], 8 - offset[1]],
    });
  }

  /** Units at one place (a station house) are fanned out on a small ring, in id order, so that
   *  none hides another; a unit alone keeps its exact place. */
  restack() {
    const groups = new Map();
    for (const [id, m] of this.unitMarkers) {
      const { lat, lng } = m.getLatLng();
      const key = `${lat.toFixed(5)},${lng.toFixed(5)}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(id);
    }
    for (const ids of groups.values()) {
      ids.sort();
      const radius = ids.length > 1 ? 12 + 2 * Math.max(0, ids.length - 4) : 0;
      ids.forEach((id, i) => {
        const angle = (2 * Math.PI * i) / ids.length - Math.PI / 2;
        const offset = [Math.round(radius * Math.cos(angle)), Math.round(radius * Math.sin(angle))];
        const m = this.unitMarkers.get(id);
        if (!m.offset || m.offset[0] !== offset[0] || m.offset[1] !== offset[1]) {
          m.offset = offset;
          m.setIcon(this.unitIcon(m.unit, m.recommended, offset));
        }
      });
    }
  }

  upsertUnit(unit, recommended = false) {
    const { lon, lat } = unit.located;
    let marker = this.unitMarkers.get(unit.id);
    if (!marker) {
      marker = L.marker([lat, lon], { icon: this.unitIcon(unit, recommended), keyboard: false, zIndexOffset: 500 });
      marker.bindTooltip(() => this.handlers.unitTooltip(marker.unit));
      marker.on("click", () => this.handlers.onUnitClick(marker.unit));
      marker.addTo(this.units);
      this.unitMarkers.set(unit.id, marker);
    } else {
      marker.setLatLng([lat, lon]);
      marker.setIcon(this.unitIcon(unit, recommended, marker.offset));
    }
    marker.unit = unit;
    marker.recommended = recommended;
    this.restackSoon();
  }

  moveUnit(unit) {
    const marker = this.unitMarkers.get(unit.id);
    if (marker) {
      marker.setLatLng([unit.located.lat, unit.located.lon]);
      this.restackSoon();
    }
  }

  /** One restack per animation frame, however many units changed in it. */
  restackSoon() {
    if (this.restackDue) return;
    this.restackDue = requestAnimationFrame(() => { this.restackDue = null; this.restack(); });
  }

  incidentIcon(incident, selected) {
    const colour = PRIORITY_COLOURS[incident.priority] || "#999";
    return L.divIcon({
      className: "incident-marker",
      html: `<div class="inc-icon st-${incident.status}${selected ? " selected" : ""}" style="background:${colour};width:20px;height:20px" data-incident="${incident.id}"><span>${incident.priority ?? "?"}</span></div>`,
      iconSize: [20, 20], iconAnchor: [10, 20],
    });
  }

  upsertIncident(incident, selected = false) {
    let marker = this.incidentMarkers.get(incident.id);
    // Final statuses (no transition leaves them) are not drawn: the service publishes them.
    const closed = (this.incidentLifecycle[incident.status] || []).length === 0;
    if (closed) {
      if (marker) { marker.remove(); this.incidentMarkers.delete(incident.id); }
      return;
    }
    if (!marker) {
      marker = L.marker([incident.lat, incident.lon], { icon: this.incidentIcon(incident, selected), zIndexOffset: 1000 });
      marker.bindTooltip(() => this.handlers.incidentTooltip(marker.incident));
      marker.on("click", () => this.handlers.onIncidentClick(marker.incident.id));
      marker.addTo(this.incidents);
      this.incidentMarkers.set(incident.id, marker);
    } else {
      marker.setIcon(this.incidentIcon(incident, selected));
    }
    marker.incident = incident;
  }

  /** Show an incident's recommended units and the assigned unit's route. */
  showSelection(incident, recommendedIds, route) {
    this.highlight.clearLayers();
    if (route && route.coords.length > 1) {
      // Magenta on a dark casing: the precinct lines are blue, the roads grey-blue.
      const line = route.coords.map(([x, y]) => [y, x]);
      L.polyline(line, { color: "#0b1118", weight: 9, opacity: 0.9, interactive: false }).addTo(this.highlight);
      L.polyline(line, { color: ROUTE_COLOUR, weight: 5, opacity: 1, interactive: false, className: "route-line" })
        .addTo(this.highlight);
    }
    if (incident) {
      for (const id of recommendedIds) {
        const m = this.unitMarkers.get(id);
        if (m) L.polyline([m.getLatLng(), [incident.lat, incident.lon]], {
          color: "#ffffff", weight: 1, dashArray: "4 4", opacity: 0.6, interactive: false,
        }).addTo(this.highlight);
      }
    }
  }

  /** Centre the map on a point, shifted left of the detail panel that covers the map's right. */
  panToVisible(lon, lat, coveredPx) {
    const size = this.map.getSize();
    const target = this.map.latLngToContainerPoint([lat, lon]);
    const want = L.point(Math.max(size.x - coveredPx, size.x / 3) / 2, size.y / 2);
    this.map.panBy(target.subtract(want));
  }
}
