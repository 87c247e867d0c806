import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { CoordinationModuleOptions } from './options';

export const {
  ConfigurableModuleClass: CoordinationConfigurableModule,
  MODULE_OPTIONS_TOKEN: COORDINATION_OPTIONS,
  OPTIONS_TYPE: COORDINATION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: COORDINATION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<CoordinationModuleOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
