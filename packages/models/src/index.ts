export {
  Catalog,
  CatalogAlias,
  CatalogEntry,
  CatalogError,
  CatalogOverride,
  Price,
  UnknownModel,
  defaultCatalog,
  listModelLevels,
  loadCatalog,
  localEngines,
  mergeCatalog,
  resolveModel,
  type LocalEngine,
  type ModelLevel,
  type ResolvedModel,
} from "./catalog.ts";
export { ModelProviderName, canRun, providerAvailability, runnableJobTypes, unavailableModel, type ModelUse, type ProviderEnv } from "./availability.ts";
export { costUsd, type ModelUsage } from "./cost.ts";
